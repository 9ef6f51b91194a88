import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkpoint, waitFor } from '../helpers/backfill.js';
import { runCli, startCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, splitPlanYaml, USERS_TABLE } from '../helpers/fixtures.js';

/**
 * Lifecycle hooks through the built binary against a real PostgreSQL: each
 * hook appends its whole environment to a file, and the test reads what the
 * documented PGSHIFT_* variables said at phase start and success, backfill
 * progress, a phase that failed on a lock, and a refusal of the old-code
 * gate; a failing or hung hook does not fail the migration, and no hook ever
 * sees the password.
 */

const PLAN = 'split-users-full-name';
const ROWS = 2_000;
/** Put in the runner's environment: it must reach no hook. */
const PASSWORD_MARKER = 'pw-marker-4f1c9a';

type HookEnv = Record<string, string>;

let db: TestDatabase;
let work: string;
let log: string;
let dir: string;
let cli: (args: string[], env?: Record<string, string>) => ReturnType<typeof runCli>;

/** What hooks recorded since `from` (a count of earlier records). */
async function recorded(from = 0): Promise<HookEnv[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as HookEnv)
    .slice(from);
}

/** Only the variables pgshift sets, so a failed assertion prints something readable. */
const pgshiftVars = (e: HookEnv): HookEnv => Object.fromEntries(Object.entries(e).filter(([k]) => k.startsWith('PGSHIFT_')));

beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(ROWS));
  await db.sql('ANALYZE users');
  work = await mkdtemp(path.join(os.tmpdir(), 'pgshift-hooks-'));
  log = path.join(work, 'hooks.jsonl');
  const recorder = path.join(work, 'record.cjs');
  await writeFile(recorder, `require('node:fs').appendFileSync(process.env.HOOK_LOG, JSON.stringify(process.env) + '\\n');\n`);
  const record = `"$HOOK_NODE" ${JSON.stringify(recorder)}`;
  const yaml = splitPlanYaml(
    PLAN,
    'public.users',
    '{ batch_size: 100, target_batch_ms: 0, pause: 0ms }',
    '{ lock_timeout: 50ms, statement_timeout: 10s, retries: 1, old_code_quiet: 1h }',
  );
  const hooks = `hooks:
  phase_start: ${JSON.stringify(record)}
  phase_success: [${JSON.stringify(record)}, "exit 7"]
  backfill_progress: ${JSON.stringify(record)}
  gate_refused: ${JSON.stringify(record)}
  progress_every: 25
  timeout: 1s
`;
  dir = await planDir({ [`${PLAN}.yaml`]: yaml + hooks });
  cli = (args, env = {}) =>
    runCli(['plan', ...args, '--dir', dir, '--database-url', db.url], {
      HOOK_LOG: log,
      HOOK_NODE: process.execPath,
      PGPASSWORD: PASSWORD_MARKER,
      DATABASE_URL: db.url,
      ...env,
    });
});

describe('lifecycle hooks', () => {
  it('runs phase_failure with the error and its exit code when a phase gives up on a lock', async () => {
    const blocker = await db.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM users'); // ACCESS SHARE until the transaction ends: expand's ALTER cannot go
    const record = `"$HOOK_NODE" ${JSON.stringify(path.join(work, 'record.cjs'))}`;
    const result = await cli(['apply', '--phase', 'expand', '--max-wait', '500ms', '--hook', `phase_failure=${record}`]);
    await blocker.query('ROLLBACK');
    await blocker.end();
    expect(result.code).toBe(3);
    const events = await recorded();
    expect(events.map((e) => [e.PGSHIFT_EVENT, e.PGSHIFT_PHASE])).toEqual([
      ['phase_start', 'expand'],
      ['phase_failure', 'expand'],
    ]);
    expect(pgshiftVars(events[1]!)).toMatchObject({
      PGSHIFT_PLAN: PLAN,
      PGSHIFT_TABLE: 'public.users',
      PGSHIFT_ACTION: 'apply',
      PGSHIFT_KIND: 'split',
      PGSHIFT_EXIT_CODE: '3',
      PGSHIFT_ERROR: expect.stringMatching(/gave up on a lock on public\.users/),
      PGSHIFT_ELAPSED_MS: expect.stringMatching(/^\d+$/),
    });
  });

  it('runs phase_start, phase_success and backfill_progress with the documented variables; a failing or hung hook fails nothing', async () => {
    const before = (await recorded()).length;
    // A hook that never ends is killed at hooks.timeout (1 s) and the next one runs.
    const result = await cli(['apply', '--phase', 'backfill', '--hook', 'phase_start=sleep 60'], { PGSHIFT_LOG_LEVEL: 'warn' });
    expect(result.code).toBe(0);
    expect(result.lines.find((l) => l.event === 'apply')).toMatchObject({ to: 'backfill' });
    expect(result.stderr).toMatch(/hook for phase_success failed with exit code 7 \(the migration goes on\)/);
    expect(result.stderr).toMatch(/hook for phase_start killed after 1000 ms/);

    const events = await recorded(before);
    const progress = events.filter((e) => e.PGSHIFT_EVENT === 'backfill_progress');
    expect(events.filter((e) => e.PGSHIFT_EVENT !== 'backfill_progress').map((e) => [e.PGSHIFT_EVENT, e.PGSHIFT_PHASE])).toEqual([
      ['phase_start', 'expand'],
      ['phase_success', 'expand'],
      ['phase_start', 'dual-write'],
      ['phase_success', 'dual-write'],
      ['phase_start', 'backfill'],
      ['phase_success', 'backfill'],
    ]);
    expect(pgshiftVars(events[0]!)).toMatchObject({
      PGSHIFT_EVENT: 'phase_start',
      PGSHIFT_PLAN: PLAN,
      PGSHIFT_PLAN_FILE: path.join(dir, `${PLAN}.yaml`),
      PGSHIFT_TABLE: 'public.users',
      PGSHIFT_KIND: 'split',
      PGSHIFT_ACTION: 'apply',
      PGSHIFT_PHASE: 'expand',
      PGSHIFT_TIME: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(events[1]!.PGSHIFT_ELAPSED_MS).toMatch(/^\d+$/);
    expect(events[1]!.PGSHIFT_ERROR).toBeUndefined();

    // Every 25 %: one event per quarter crossed, in order, ending at 100 % with every row.
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.length).toBeLessThanOrEqual(4);
    const percents = progress.map((e) => Number(e.PGSHIFT_PERCENT));
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    expect(new Set(percents.map((p) => Math.floor(p / 25))).size).toBe(percents.length);
    expect(pgshiftVars(progress.at(-1)!)).toMatchObject({
      PGSHIFT_PHASE: 'backfill',
      PGSHIFT_PERCENT: '100',
      PGSHIFT_ROWS_DONE: String(ROWS),
      PGSHIFT_ROWS_TOTAL: expect.stringMatching(/^\d+$/),
      PGSHIFT_ROWS_PER_SECOND: expect.stringMatching(/^\d+$/),
    });
    // Progress comes between the backfill's start and its success.
    const kinds = events.map((e) => e.PGSHIFT_EVENT);
    expect(kinds.indexOf('backfill_progress')).toBeGreaterThan(kinds.lastIndexOf('phase_start'));
    expect(kinds.lastIndexOf('backfill_progress')).toBeLessThan(kinds.lastIndexOf('phase_success'));
  });

  it('runs gate_refused naming the old code when the gate refuses stop-write', async () => {
    expect((await cli(['apply', '--phase', 'switch-read'])).code).toBe(0);
    const before = (await recorded()).length;
    const oldRelease = await db.connect();
    await oldRelease.query(`SET application_name = 'old-release'`);
    await oldRelease.query(`UPDATE users SET full_name = 'Old Writer' WHERE id = 7`);
    const refused = await cli(['apply', '--phase', 'stop-write']);
    await oldRelease.end();
    expect(refused.code).toBe(2);
    const events = await recorded(before);
    expect(events.map((e) => e.PGSHIFT_EVENT)).toEqual(['gate_refused']);
    expect(pgshiftVars(events[0]!)).toMatchObject({
      PGSHIFT_PLAN: PLAN,
      PGSHIFT_PHASE: 'stop-write',
      PGSHIFT_ACTION: 'apply',
      PGSHIFT_EXIT_CODE: '2',
      PGSHIFT_ERROR: expect.stringMatching(/old code still uses the old columns, so stop-write waits/),
      PGSHIFT_OLD_CODE_SESSIONS: '1',
      PGSHIFT_OLD_CODE_APPLICATIONS: 'old-release',
    });
  });

  it('runs throttle with the reason when a running backfill is made to wait (here: paused from another process)', async () => {
    await db.sql(`CREATE TABLE steered (id bigserial PRIMARY KEY, full_name text, email text)`);
    await db.sql(`INSERT INTO steered (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, 6000) g`);
    const record = `"$HOOK_NODE" ${JSON.stringify(path.join(work, 'record.cjs'))}`;
    const steeredDir = await planDir({
      'split-steered.yaml': splitPlanYaml('split-steered', 'public.steered', '{ batch_size: 100, pause: 60ms, target_batch_ms: 0 }', '{ lock_timeout: 2s }'),
    });
    const env = { HOOK_LOG: log, HOOK_NODE: process.execPath, DATABASE_URL: db.url };
    const args = (...a: string[]) => ['plan', ...a, '--dir', steeredDir, '--database-url', db.url];
    expect((await runCli(args('apply', '--phase', 'dual-write'), env)).code).toBe(0);
    const before = (await recorded()).length;
    const running = startCli(args('apply', '--phase', 'backfill', '--hook', `throttle=${record}`), env);
    await waitFor('300 rows walked', async () => ((await checkpoint(db, 'split-steered'))?.rows_done ?? 0) >= 300);
    expect((await runCli(args('pause', 'split-steered'), env)).code).toBe(0);
    const throttled = await waitFor('the throttle hook', async () => (await recorded(before)).find((e) => e.PGSHIFT_EVENT === 'throttle'));
    expect((await runCli(args('resume', 'split-steered'), env)).code).toBe(0);
    expect((await running.done).code).toBe(0);
    expect(pgshiftVars(throttled)).toMatchObject({
      PGSHIFT_PLAN: 'split-steered',
      PGSHIFT_TABLE: 'public.steered',
      PGSHIFT_PHASE: 'backfill',
      PGSHIFT_WAITING: expect.stringMatching(/^paused by .*migrate plan resume split-steered/),
      PGSHIFT_ROWS_DONE: expect.stringMatching(/^\d+$/),
      PGSHIFT_PERCENT: expect.stringMatching(/^\d+$/),
    });
    expect(Number(throttled.PGSHIFT_ROWS_DONE)).toBeGreaterThanOrEqual(300);
    // Once for the wait, not once per look at the pause.
    expect((await recorded(before)).filter((e) => e.PGSHIFT_EVENT === 'throttle')).toHaveLength(1);
  });

  it('never hands a hook the password', async () => {
    const events = await recorded();
    const password = new URL(db.url).password;
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) {
      expect(e.PGPASSWORD).toBeUndefined();
      expect(e.DATABASE_URL).toBeUndefined();
      for (const value of Object.values(e)) {
        expect(value).not.toContain(PASSWORD_MARKER);
        expect(value).not.toContain(`:${password}@`);
      }
      expect(e.PGSHIFT_DATABASE).toMatch(/^postgres(ql)?:\/\/[^:]*:\*\*\*@/);
    }
  });
});
