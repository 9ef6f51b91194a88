import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CHANGE_KINDS } from '../../../src/changes/kinds/registry.js';
import { loadPlans } from '../../../src/plan/load.js';

/**
 * CONTRIBUTING's checklist for a change kind, for every kind in the
 * registry: its page in docs/kinds/ and a valid example plan in plans/
 * (test/db/example-plans.test.ts takes those through six phases). Its row in
 * test/db/roles.test.ts is held by the type checker.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const examplePlans = loadPlans(`${ROOT}plans`);

describe.each(CHANGE_KINDS)('change kind %s', (kind) => {
  it(`has its page, docs/kinds/${kind}.md`, async () => {
    await expect(access(`${ROOT}docs/kinds/${kind}.md`)).resolves.toBeUndefined();
  });

  it('has an example plan in plans/ that loads', async () => {
    expect((await examplePlans).map((p) => p.change.kind)).toContain(kind);
  });
});
