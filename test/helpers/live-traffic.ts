import { beforeAll, describe, expect, it } from 'vitest';
import { APPS, type AppName } from '../../examples/app/index.js';
import { formatReport } from '../../examples/load/report.js';
import { runScenario, SCENARIOS, type ScenarioName } from '../../examples/load/scenario.js';
import { loadPlans } from '../../src/index.js';
import { freshDatabase, type TestDatabase } from './db.js';

/** CI scale: a few seconds per scenario, still every phase and every release switch under traffic. */
export const CI_SCALE = { seedRows: 3_000, clients: 4, windowMs: 300, thinkMs: 2 } as const;

/**
 * Both scenarios of one plan, with the example app's releases as traffic, on
 * a database of the file's own. The plan file in `plans/` is used as shipped,
 * guards included: the bar's lock wait is its lock_timeout + 500 ms.
 */
export function liveTrafficSuite(app: AppName): void {
  describe(`${APPS[app].plan} under live traffic`, () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await freshDatabase();
    });
    const scenarios: ScenarioName[] = ['forward', 'rollback'];
    it.each(scenarios)('%s: 0 client errors, 0 lost or wrong writes, no lock wait over lock_timeout + 500 ms', async (scenario) => {
      const family = APPS[app];
      const [plan] = await loadPlans('plans', [family.plan]);
      const report = await runScenario({ url: db.url, family, plan: plan!, steps: SCENARIOS[scenario], ...CI_SCALE });
      const evidence = formatReport(scenario, report);
      expect(report.violations, evidence).toEqual([]);
      expect(report.errors, evidence).toEqual([]);
      expect(report.check.failed, evidence).toBe(0);
      // The check read the schema each scenario ends on, and traffic ran in every window.
      expect(report.check.sides).toEqual(scenario === 'forward' ? ['new'] : ['old']);
      expect(report.check.rows).toBeGreaterThan(CI_SCALE.seedRows);
      for (const w of report.windows) expect(w.transactions, `${w.window}\n${evidence}`).toBeGreaterThan(0);
    });
  });
}
