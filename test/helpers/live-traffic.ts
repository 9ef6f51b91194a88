import { beforeAll, describe, expect, it } from 'vitest';
import { APPS, type AppName } from '../../examples/app/index.js';
import { formatReport } from '../../examples/load/report.js';
import { runScenario, SCENARIOS, type ScenarioName } from '../../examples/load/scenario.js';
import { loadPlans } from '../../src/index.js';
import { freshDatabase, type TestDatabase } from './db.js';

/**
 * CI scale: a few seconds per scenario, still every phase and every release
 * switch under traffic. A short lock_timeout (as `--lock-timeout` would set)
 * keeps the waits short; the bar is measured against it. The old-code gate
 * is on (the test suite turns it off elsewhere), its quiet period shrunk
 * like the release cadence: stop-write and contract go on once old code was
 * not seen for half a window, which a rollout as shipped gives them.
 */
export const CI_SCALE = {
  seedRows: 3_000,
  clients: 4,
  hotRows: 10,
  windowMs: 250,
  thinkMs: 2,
  guards: { lockTimeoutMs: 300, oldCodeQuietMs: 125 },
} as const;

/**
 * Going forward, a slow request holds a transaction 1.5 × lock_timeout as
 * each phase starts, so every DDL step has to wait for it (outside the lock
 * queue: no client queues behind it meanwhile). Each costs a retry's backoff, so the rollback
 * scenario, there to prove no write is lost going back, runs without (the
 * bench runs both with).
 */
const SLOW_REQUEST: Record<ScenarioName, number> = { forward: 1.5, rollback: 0 };

/**
 * Both scenarios of one plan, with the example app's releases as traffic, on
 * a database of the file's own. The plan file in `plans/` is used as shipped,
 * but for its lock_timeout.
 */
export function liveTrafficSuite(app: AppName): void {
  describe(`${APPS[app].plan} under live traffic`, () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await freshDatabase();
    });
    const scenarios: ScenarioName[] = ['forward', 'rollback'];
    it.each(scenarios)('%s: 0 client errors, 0 lost or wrong writes, no lock wait over lock_timeout + 100 ms', async (scenario) => {
      const family = APPS[app];
      const [plan] = await loadPlans('plans', [family.plan]);
      const report = await runScenario({ url: db.url, family, plan: plan!, steps: SCENARIOS[scenario], ...CI_SCALE, slowRequest: SLOW_REQUEST[scenario] });
      const evidence = formatReport(scenario, report);
      expect(report.violations, evidence).toEqual([]);
      expect(report.errors, evidence).toEqual([]);
      expect(report.check.failed, evidence).toBe(0);
      // The check read the schema each scenario ends on, and traffic ran in every window.
      expect(report.check.sides).toEqual(scenario === 'forward' ? ['new'] : ['old']);
      expect(report.check.rows).toBeGreaterThan(CI_SCALE.seedRows);
      expect(report.check.sharedRows).toBeGreaterThan(0);
      // pgshift's own verify ran under traffic after every window where both sides are kept in sync.
      expect(report.windows.filter((w) => w.differing !== null).map((w) => w.window)).toEqual(
        scenario === 'forward'
          ? ['backfill', 'switch-read', 'stop-write']
          : ['backfill', 'switch-read', 'stop-write', 'rollback stop-write', 'rollback switch-read', 'rollback backfill'],
      );
      for (const w of report.windows) expect(w.transactions, `${w.window}\n${evidence}`).toBeGreaterThan(0);
      if (SLOW_REQUEST[scenario]) {
        // The slow request did hold up the phases' DDL (or the wait bar would prove nothing): pgshift waited for
        // it, outside the lock queue, so no client queued behind the DDL for more than one attempt's lock_timeout.
        // (Before pgshift waited outside the queue, this asserted that clients did queue behind it.)
        const ddl = report.windows.filter((w) => ['expand', 'switch-read', 'stop-write', 'contract'].includes(w.window));
        expect(ddl.find((w) => w.window === 'expand')?.applyMs ?? 0, evidence).toBeGreaterThan(report.slowHoldMs / 2);
        expect(Math.max(...ddl.map((w) => w.lockWait?.ms ?? 0)), evidence).toBeLessThan(CI_SCALE.guards.lockTimeoutMs + 50);
      }
    });
  });
}
