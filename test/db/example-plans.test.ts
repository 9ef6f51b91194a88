import { readdir, readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHANGE_KINDS } from '../../src/changes/kinds/registry.js';
import { PHASES } from '../../src/phases/phases.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * The example plans in plans/ are the ones the README and the kind pages
 * show: every one of them must lint against examples/schema.sql and go
 * through all six phases with the CLI, as a user would run them.
 */

const PLANS = new URL('../../plans/', import.meta.url);
const SCHEMA = new URL('../../examples/schema.sql', import.meta.url);

let db: TestDatabase;
let names: string[];
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(await readFile(SCHEMA, 'utf8'));
  names = (await readdir(PLANS))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.replace(/\.yaml$/, ''))
    .sort();
});

const cli = (...args: string[]) => runCli(['plan', ...args, '--dir', PLANS.pathname, '--database-url', db.url, '--json']);

describe('example plans', () => {
  it('cover every change kind', async () => {
    const kinds = await Promise.all(names.map(async (n) => Object.keys(parse(await readFile(new URL(`${n}.yaml`, PLANS), 'utf8')) as object)));
    for (const kind of CHANGE_KINDS) expect(kinds.flat()).toContain(kind);
  });

  it('all lint clean against examples/schema.sql', async () => {
    const result = await runCli(['plan', 'lint', '--dir', PLANS.pathname, '--database-url', db.url, '--json']);
    expect(result.errors).toBe('');
    expect(result.code).toBe(0);
  });

  it('each goes through all six phases, one release at a time', async () => {
    // Each plan alone, one after the other, by name.
    for (const name of names) {
      for (const phase of PHASES) {
        const result = await cli('apply', name, '--phase', 'next');
        expect(result.errors, `${name} ${phase}`).toBe('');
        expect(result.code, `${name} ${phase}`).toBe(0);
      }
      const status = await cli('status', name);
      expect(status.lines[0]).toEqual([expect.objectContaining({ plan: name, phase: 'contract', status: 'complete' })]);
    }
    // Six CLI runs per plan in plans/: it grows with the folder.
  }, 600_000);
});
