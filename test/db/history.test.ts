import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, SPLIT_YAML, USERS_TABLE } from '../helpers/fixtures.js';

/**
 * `migrate plan log`: every apply and rollback, newest first, with its
 * outcome, duration, error, who ran it and whether `--force` was given; and
 * `status` as a person reads it: `k/6 phase`, "… ago", the backfill's rate
 * and time to go.
 */

const PLAN = 'split-users-full-name';
let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(300));
  dir = await planDir({ [`${PLAN}.yaml`]: SPLIT_YAML });
});

const cli = (...args: string[]) => runCli(['plan', ...args, '--dir', dir, '--database-url', db.url]);

interface Event {
  plan: string;
  phase: string;
  action: string;
  outcome: string;
  error: string | null;
  durationMs: number;
  actor: string;
  version: string;
  forced: boolean;
}

describe('history', () => {
  it('is empty before pgshift ever ran, and creates nothing', async () => {
    const result = await cli('log', '--json');
    expect(result.code).toBe(0);
    expect(result.lines[0]).toEqual([]);
    expect(await db.sql(`SELECT to_regnamespace('pgshift') AS s`)).toEqual([{ s: null }]);
  });

  it('lists applies, a rollback, a failure and a forced run, newest first', async () => {
    expect((await cli('apply', PLAN, '--phase', 'backfill')).code).toBe(0);
    expect((await cli('rollback', PLAN)).code).toBe(0);
    expect((await cli('apply', PLAN, '--phase', 'backfill')).code).toBe(0);
    // A row changed behind the trigger's back: switch-read's verification fails.
    await db.sql(`ALTER TABLE users DISABLE TRIGGER USER; UPDATE users SET first_name = 'Tampered' WHERE id = 1; ALTER TABLE users ENABLE TRIGGER USER`);
    expect((await cli('apply', PLAN, '--phase', 'next')).code).toBe(4);
    // The plan file is edited in flight: only --force moves it, and the log says so.
    await writeFile(path.join(dir, `${PLAN}.yaml`), SPLIT_YAML.replace("concat_ws(' ', first_name, last_name)", "concat_ws(' ',first_name,last_name)"));
    expect((await cli('rollback', PLAN)).code).toBe(2);
    expect((await cli('rollback', PLAN, '--force')).code).toBe(0);

    const result = await cli('log', PLAN, '--json');
    expect(result.code).toBe(0);
    const events = result.lines[0] as unknown as Event[];
    expect(events.map((e) => [e.action, e.phase, e.outcome, e.forced])).toEqual([
      ['rollback', 'switch-read', 'succeeded', true],
      ['apply', 'switch-read', 'failed', false],
      ['apply', 'backfill', 'succeeded', false],
      ['rollback', 'backfill', 'succeeded', false],
      ['apply', 'backfill', 'succeeded', false],
      ['apply', 'dual-write', 'succeeded', false],
      ['apply', 'expand', 'succeeded', false],
    ]);
    expect(events[1]!.error).toMatch(/1 row\(s\) of plan "split-users-full-name" differ/);
    for (const e of events) {
      expect(e.plan).toBe(PLAN);
      expect(e.durationMs).toBeGreaterThanOrEqual(0);
      expect(e.actor).toMatch(/.@./);
      expect(e.version).toMatch(/^\d+\.\d+\.\d+/);
    }
    expect((await cli('log', 'no-such-plan', '--json')).lines[0]).toEqual([]);
    expect(((await cli('log', '--json', '--limit', '2')).lines[0] as unknown as unknown[]).length).toBe(2);
  });

  it('prints a table for people, forced runs marked', async () => {
    const result = await cli('log', PLAN, '--no-json');
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^when\s+plan\s+action\s+phase\s+outcome\s+took\s+who\s+forced\s+error$/);
    expect(lines[2]).toMatch(/s ago\)\s+split-users-full-name\s+rollback\s+switch-read\s+succeeded\s+\d+ ms\s+\S+@\S+ \(pgshift [\d.]+\)\s+yes/);
    expect(lines[3]).toMatch(/apply\s+switch-read\s+failed.*differ/);
  });
});

describe('status for people', () => {
  it('shows k/6 phase, the last event as "… ago", and the backfill done', async () => {
    const result = await cli('status', PLAN, '--no-json');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /split-users-full-name\s+public\.users\s+3\/6 backfill\s+in_progress\s+switch-read\s+100% \(300\/300\) done\s+rollback switch-read succeeded \d+ s ago/,
    );
  });

  it('shows the rate and the time to go while the backfill runs', async () => {
    // A backfill a third of the way through, ten seconds after it started.
    await db.sql(`UPDATE pgshift.backfill SET finished_at = NULL, rows_done = 100, started_at = now() - interval '10 s', updated_at = now()`);
    const json = await cli('status', PLAN, '--json');
    expect(json.lines[0]).toEqual([expect.objectContaining({ backfill: { done: 100, total: 300, finished: false, rowsPerSecond: 10, etaSeconds: 20 } })]);
    const human = await cli('status', PLAN, '--no-json');
    expect(human.stdout).toMatch(/33% \(100\/300\) 10 rows\/s, ETA 20 s/);
  });
});
