import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, SPLIT_YAML, USERS_TABLE } from '../helpers/fixtures.js';

const PLAN = 'split-users-full-name';
/** Batches of 200 rows with 300 ms pauses: a backfill of 3000 rows that lasts several lease periods of 1 s. */
const SLOW_SPLIT = SPLIT_YAML.replace('batch_size: 500', 'batch_size: 200').replace('pause: 0ms', 'pause: 300ms, target_batch_ms: 0');
const LEASE = { PGSHIFT_LEASE: '1s' };

let db: TestDatabase;
let args: string[];
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(3000));
  args = ['--dir', await planDir({ 'split.yaml': SLOW_SPLIT }), '--database-url', db.url];
});

async function backfillReaches(rows: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const [row] = await db.sql<{ n: number }>(`SELECT coalesce(max(rows_done), 0)::int AS n FROM pgshift.backfill`);
    if (row!.n >= rows) return;
    await sleep(25);
  }
  throw new Error(`the backfill never reached ${rows} rows`);
}

describe('plan lease', () => {
  it('is renewed by its heartbeat while a phase outlasts it, is refused to a second runner meanwhile, and is gone afterwards', async () => {
    expect((await runCli(['plan', 'apply', '--phase', 'dual-write', ...args], LEASE)).code).toBe(0);
    const run = startCli(['plan', 'apply', '--phase', 'backfill', ...args], LEASE);
    await backfillReaches(200);
    await sleep(1500); // longer than the lease itself
    const [lease] = await db.sql<{ live: boolean; renewed: boolean; holder: string }>(
      `SELECT expires_at > now() AS live, heartbeat_at > acquired_at + interval '1 second' AS renewed, holder FROM pgshift.leases WHERE plan = $1`,
      [PLAN],
    );
    expect(lease).toMatchObject({ live: true, renewed: true, holder: expect.stringMatching(/^pgshift \S+ \S+@\S+$/) });
    const second = await runCli(['plan', 'apply', '--phase', 'backfill', ...args], LEASE);
    expect(second.code).toBe(5);
    expect(second.errors).toMatch(/is being run by another runner \(pid \d+, pgshift .*holding it since .*last heartbeat [\d.]+s ago; its lease expires at/);
    const first = await run.done;
    expect(first.code).toBe(0);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.leases`)).toEqual([{ n: 0 }]);
    expect(await db.sql(`SELECT count(*)::int AS n FROM users WHERE first_name IS NULL`)).toEqual([{ n: 0 }]);
    expect((await runCli(['plan', 'rollback', PLAN, '--phase', 'expand', ...args])).code).toBe(0);
  });

  it('a runner whose lease is taken over stops at its next batch with exit 5 and records nothing more', async () => {
    expect((await runCli(['plan', 'apply', '--phase', 'dual-write', ...args], LEASE)).code).toBe(0);
    const events = `SELECT count(*)::int AS n FROM pgshift.events WHERE plan = $1`;
    const eventsBefore = await db.sql(events, [PLAN]);
    const run = startCli(['plan', 'apply', '--phase', 'backfill', ...args], LEASE);
    await backfillReaches(200);
    // What a runner taking over would write: another token, another holder.
    await db.sql(
      `UPDATE pgshift.leases SET token = gen_random_uuid(), holder = 'pgshift 9.9.9 intruder@elsewhere', pid = 4242,
         heartbeat_at = now(), expires_at = now() + interval '1 hour' WHERE plan = $1`,
      [PLAN],
    );
    const stopped = await run.done;
    expect(stopped.code).toBe(5);
    expect(stopped.errors).toMatch(/plan "split-users-full-name": this runner lost its lease \(now pid 4242, pgshift 9\.9\.9 intruder@elsewhere/);
    const [backfill] = await db.sql<{ rows_done: number; finished: boolean }>(
      `SELECT rows_done::int, finished_at IS NOT NULL AS finished FROM pgshift.backfill`,
    );
    expect(backfill!.finished).toBe(false);
    expect(backfill!.rows_done).toBeLessThan(3000);
    // Not marked failed, no failed event: the plan's state is the new holder's to write.
    expect(await db.sql(`SELECT phase, status, unfinished_phase, last_error FROM pgshift.plans WHERE name = $1`, [PLAN])).toEqual([
      { phase: 'dual-write', status: 'in_progress', unfinished_phase: 'backfill', last_error: null },
    ]);
    expect(await db.sql(events, [PLAN])).toEqual(eventsBefore);
    // The intruder's lease was not released by the runner that lost it.
    expect(await db.sql(`SELECT pid FROM pgshift.leases WHERE plan = $1`, [PLAN])).toEqual([{ pid: 4242 }]);

    await db.sql(`DELETE FROM pgshift.leases WHERE plan = $1`, [PLAN]);
    expect((await runCli(['plan', 'apply', '--phase', 'backfill', ...args])).code).toBe(0);
    expect(await db.sql(`SELECT count(*)::int AS n FROM users WHERE first_name IS NULL`)).toEqual([{ n: 0 }]);
    expect((await runCli(['plan', 'rollback', PLAN, '--phase', 'expand', ...args])).code).toBe(0);
  });

  it('a dropped heartbeat connection is replaced, and the lease stays live', async () => {
    expect((await runCli(['plan', 'apply', '--phase', 'dual-write', ...args], LEASE)).code).toBe(0);
    const run = startCli(['plan', 'apply', '--phase', 'backfill', ...args], LEASE);
    await backfillReaches(200);
    const heartbeat = `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgshift lease'`;
    const [first] = await db.sql<{ pid: number }>(heartbeat);
    await db.sql(`SELECT pg_terminate_backend($1)`, [first!.pid]);
    await sleep(1500); // longer than the lease itself
    expect(await db.sql(`SELECT expires_at > now() AS live FROM pgshift.leases WHERE plan = $1`, [PLAN])).toEqual([{ live: true }]);
    const [second] = await db.sql<{ pid: number }>(heartbeat);
    expect(second!.pid).not.toBe(first!.pid);
    expect((await run.done).code).toBe(0);
    expect((await runCli(['plan', 'rollback', PLAN, '--phase', 'expand', ...args])).code).toBe(0);
  });

  it("a session queued on a killed runner's beacon does not keep its lease alive: the next runner takes over at once", async () => {
    expect((await runCli(['plan', 'apply', '--phase', 'dual-write', ...args])).code).toBe(0);
    // The default lease (60 s): a takeover before it expires is one the beacon allowed.
    const run = startCli(['plan', 'apply', '--phase', 'backfill', ...args]);
    await backfillReaches(200);
    const [lease] = await db.sql<{ beacon: string }>(`SELECT beacon::text AS beacon FROM pgshift.leases WHERE plan = $1`, [PLAN]);
    // Anyone can read the key from pg_locks and queue a shared lock on it; it is granted once the runner's backend is gone.
    const squatter = await db.connect();
    try {
      const queued = squatter.query(`SELECT pg_advisory_lock_shared($1::int8)`, [lease!.beacon]);
      for (let i = 0; ; i++) {
        const waiting = await db.sql(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND mode = 'ShareLock'`);
        if (waiting.length) break;
        if (i > 400) throw new Error('the shared lock never queued');
        await sleep(25);
      }
      run.child.kill('SIGKILL');
      await run.done;
      await queued;
      expect(await db.sql(`SELECT expires_at > now() + interval '30 seconds' AS live FROM pgshift.leases WHERE plan = $1`, [PLAN])).toEqual([{ live: true }]);
      const next = await runCli(['plan', 'apply', '--phase', 'backfill', ...args]);
      expect(next.errors).toBe('');
      expect(next.code).toBe(0);
      expect(await db.sql(`SELECT count(*)::int AS n FROM users WHERE first_name IS NULL`)).toEqual([{ n: 0 }]);
    } finally {
      await squatter.end();
    }
    expect((await runCli(['plan', 'rollback', PLAN, '--phase', 'expand', ...args])).code).toBe(0);
  });

  it('an installation made before the lease table gets it when its state schema is upgraded', async () => {
    expect((await runCli(['plan', 'apply', '--phase', 'expand', ...args])).code).toBe(0);
    // What 0.1.0 left: no lease table, and no version recorded (state schema version 1).
    await db.sql(`DROP TABLE pgshift.leases; DROP TABLE pgshift.schema_version`);
    expect((await runCli(['plan', 'apply', '--phase', 'dual-write', ...args])).code).toBe(0);
    expect(await db.sql(`SELECT to_regclass('pgshift.leases') IS NOT NULL AS ok`)).toEqual([{ ok: true }]);
    expect((await runCli(['plan', 'rollback', PLAN, '--phase', 'expand', ...args])).code).toBe(0);
  });
});
