import { beforeAll, describe, expect, it } from 'vitest';
import { indexApp } from '../../examples/app/user-index.js';
import { formatReport } from '../../examples/load/report.js';
import { runScenario, SCENARIOS, type ScenarioName } from '../../examples/load/scenario.js';
import { parsePlan } from '../../src/index.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { CI_SCALE } from '../helpers/live-traffic.js';

/**
 * The index kind under live traffic from the example app, on its users
 * table (its releases write the same columns: an index changes none): a
 * unique index on lower(email) built CONCURRENTLY at expand while every
 * client writes, each phase taken and, in the rollback scenario, undone, a
 * slow request holding a transaction as each phase starts. 0 client errors,
 * 0 lost or wrong writes, no lock wait over lock_timeout + 100 ms.
 */

const PLAN = `plan: index-users-email
table: public.users
index: { name: users_email_lower_key, expression: "lower(email)", unique: true }
guards: { lock_timeout: 300ms }`;

describe('an index plan under live traffic', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase();
  });
  const scenarios: ScenarioName[] = ['forward', 'rollback'];
  it.each(scenarios)('%s: 0 client errors, 0 lost or wrong writes, no lock wait over lock_timeout + 100 ms', async (scenario) => {
    const plan = parsePlan(PLAN, 'index-users-email.yaml');
    const report = await runScenario({ url: db.url, family: indexApp(plan.name), plan, steps: SCENARIOS[scenario], ...CI_SCALE, slowRequest: 1.5 });
    const evidence = formatReport(scenario, report);
    expect(report.violations, evidence).toEqual([]);
    expect(report.errors, evidence).toEqual([]);
    expect(report.check.failed, evidence).toBe(0);
    expect(report.check.rows).toBeGreaterThan(CI_SCALE.seedRows);
    for (const w of report.windows) expect(w.transactions, `${w.window}\n${evidence}`).toBeGreaterThan(0);
    const indexes = await db.sql<{ name: string }>(`SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = 'users'::regclass ORDER BY 1`);
    expect(indexes.map((i) => i.name)).toEqual(scenario === 'forward' ? ['users_email_lower_key', 'users_pkey'] : ['users_pkey']);
  });
});
