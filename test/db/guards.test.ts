import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, RENAME_YAML, seedUsers, SPLIT_YAML, USERS_TABLE } from '../helpers/fixtures.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(3000));
});

/** Run point reads in a loop until stopped; returns the slowest one in ms, and the reading session's pid. */
function readLoop(db: TestDatabase): { pid: Promise<number>; stop: () => Promise<{ max: number; count: number }> } {
  let running = true;
  let announce: (pid: number) => void = () => undefined;
  const pid = new Promise<number>((resolve) => (announce = resolve));
  const done = (async () => {
    const client = await db.connect();
    announce((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
    let max = 0;
    let count = 0;
    while (running) {
      const started = performance.now();
      await client.query('SELECT id, full_name FROM users WHERE id = $1', [1 + (count % 3000)]);
      max = Math.max(max, performance.now() - started);
      count++;
    }
    await client.end();
    return { max, count };
  })();
  return {
    pid,
    stop: async () => {
      running = false;
      return done;
    },
  };
}

describe('lock guards', () => {
  it('waits outside the lock queue up to max_wait, then gives up with exit 3 naming the blocker; reads never queue behind it; succeeds once the blocker ends', async () => {
    const dir = await planDir({ 'rename.yaml': RENAME_YAML });
    const blocker = await db.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM users'); // holds ACCESS SHARE until the transaction ends
    const blockerPid = (await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

    const reads = readLoop(db);
    const readerPid = await reads.pid;
    await sleep(100);
    const lockTimeoutMs = 50;
    const args = ['--lock-timeout', `${lockTimeoutMs}ms`, '--max-wait', '1500ms', '--dir', dir, '--database-url', db.url];
    const result = await runCli(['plan', 'apply', ...args], { PGSHIFT_LOG_LEVEL: 'info' });
    const { max, count } = await reads.stop();

    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`pid ${blockerPid}`);
    // It never queued: no attempt was made while the blocker held its lock.
    expect(result.errors).toMatch(/gave up on a lock on public\.users after 0 attempt\(s\) and 1\.\d s of waiting \(guards\.max_wait\)/);
    expect(result.errors).toContain(`pid ${blockerPid}`);
    expect(result.errors).toContain('AccessShareLock on public.users');
    // The blocker first; besides it at most the reader, whose point read on a loaded machine can outlive the 20 ms a
    // young transaction is given and so be in the way too. Nobody else.
    const named = result.errors.match(/pid \d+/g) ?? [];
    expect(named[0]).toBe(`pid ${blockerPid}`);
    expect(named.filter((p) => p !== `pid ${blockerPid}` && p !== `pid ${readerPid}`)).toEqual([]);
    // It said so while waiting: once at the start (then every 5 s).
    expect(result.stderr).toMatch(
      /waiting outside the lock queue for .{1,3}add username[^\n]* on public\.users \(\d\.\d s so far, up to \d\.\d s more\): pid \d+/,
    );
    expect(count).toBeGreaterThan(10);
    // Wall-clock latency, so with room for the CLI start-up on a loaded machine (test/db/lock-wait.test.ts measures lock waits).
    expect(max).toBeLessThan(lockTimeoutMs + 500);
    // Nothing was half-done: the column is not there.
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'username'`)).toEqual([{ n: 0 }]);

    await blocker.query('COMMIT');
    await blocker.end();
    const retried = await runCli(['plan', 'apply', '--dir', dir, '--database-url', db.url]);
    expect(retried.code).toBe(0);
    expect(retried.lines[0]).toMatchObject({ event: 'apply', plan: 'rename-users-user-name', to: 'expand' });
    expect((await runCli(['plan', 'rollback', 'rename-users-user-name', '--dir', dir, '--database-url', db.url])).code).toBe(0);
  });
});

describe('runners', () => {
  it('two apply --phase next started together advance exactly one phase; the loser exits 5 naming the holder', async () => {
    const slow = SPLIT_YAML.replace('batch_size: 500', 'batch_size: 100').replace('pause: 0ms', 'pause: 40ms');
    const dir = await planDir({ 'split.yaml': slow });
    const args = ['--dir', dir, '--database-url', db.url];
    expect((await runCli(['plan', 'apply', '--phase', 'dual-write', ...args])).code).toBe(0);

    const [a, b] = await Promise.all([runCli(['plan', 'apply', '--phase', 'next', ...args]), runCli(['plan', 'apply', '--phase', 'next', ...args])]);
    expect([a.code, b.code].sort()).toEqual([0, 5]);
    const loser = a.code === 5 ? a : b;
    expect(loser.errors).toMatch(/plan "split-users-full-name" is being run by another runner \(pid \d+, pgshift/);
    const status = await runCli(['plan', 'status', 'split-users-full-name', '--json', ...args]);
    expect(JSON.parse(status.stdout)).toEqual([
      expect.objectContaining({
        plan: 'split-users-full-name',
        phase: 'backfill',
        status: 'in_progress',
        next: 'switch-read',
        backfill: { done: 3000, total: 3000, finished: true, rowsPerSecond: null, etaSeconds: null },
      }),
    ]);
    expect((await runCli(['plan', 'rollback', 'split-users-full-name', '--phase', 'expand', ...args])).code).toBe(0);
  });

  it('a runner killed mid-backfill leaves a checkpoint; the next apply resumes there and ends with 0 differing rows', async () => {
    // Small fixed batches with long pauses, so the kill lands while the backfill is under way.
    const slow = SPLIT_YAML.replace('batch_size: 500', 'batch_size: 100').replace('pause: 0ms', 'pause: 150ms, target_batch_ms: 0');
    const dir = await planDir({ 'split.yaml': slow });
    const args = ['--dir', dir, '--database-url', db.url];
    expect((await runCli(['plan', 'apply', '--phase', 'dual-write', ...args])).code).toBe(0);

    const run = startCli(['plan', 'apply', '--phase', 'backfill', ...args]);
    for (let i = 0; i < 200; i++) {
      const [row] = await db.sql<{ n: number }>(`SELECT coalesce(max(rows_done), 0)::int AS n FROM pgshift.backfill`).catch(() => [{ n: 0 }]);
      if (row!.n >= 200) break;
      await sleep(25);
    }
    run.child.kill('SIGKILL');
    await run.done;
    const [checkpoint] = await db.sql<{ rows_done: number; finished: boolean }>(
      `SELECT rows_done::int, finished_at IS NOT NULL AS finished FROM pgshift.backfill`,
    );
    expect(checkpoint!.finished).toBe(false);
    expect(checkpoint!.rows_done).toBeGreaterThanOrEqual(200);
    expect(checkpoint!.rows_done).toBeLessThan(3000);
    // The checkpoint never runs ahead of the rows it describes.
    const [filled] = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM users WHERE first_name IS NOT NULL`);
    expect(filled!.n).toBeGreaterThanOrEqual(checkpoint!.rows_done);

    const resumed = await runCli(['plan', 'apply', '--phase', 'backfill', ...args], { PGSHIFT_LOG_LEVEL: 'info' });
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`resuming split-users-full-name backfill at key \\d+ \\(${checkpoint!.rows_done} of ~\\d+ rows done\\)`));
    const verify = await runCli(['plan', 'verify', 'split-users-full-name', ...args]);
    expect(verify.lines[0]).toMatchObject({ differing: 0 });
    expect(verify.code).toBe(0);
    expect(await db.sql(`SELECT count(*)::int AS n FROM users WHERE first_name IS NULL`)).toEqual([{ n: 0 }]);
  });
});
