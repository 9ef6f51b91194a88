import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, USERS_TABLE } from '../helpers/fixtures.js';
import { conflictingSessions } from '../../src/db/locks.js';

/**
 * Waiting for locks outside PostgreSQL's lock queue: application queries
 * never wait behind pgshift longer than one attempt's lock_timeout, however
 * long pgshift itself waits; a step locking several tables never holds one
 * while waiting for another.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(2000));
});

/** The application_name of the test's application sessions. */
const APP = 'lock-wait-test-app';

/**
 * Application traffic: each query in a loop on its own session, timed with
 * timestamps around it; and, from a separate session, every 5 ms, how long
 * each of the application's sessions has been waiting for a lock
 * (`pg_stat_activity`), which the machine's CPU load does not inflate.
 * Both count only from `from(t)` on; `stop` gives the longest of each.
 */
function traffic(
  db: TestDatabase,
  queries: readonly string[],
): { from: (t: number) => void; stop: () => Promise<{ max: number; lockWait: number; count: number }> } {
  let running = true;
  let since = Infinity;
  const loops = queries.map(async (sql) => {
    const client = await db.connect();
    await client.query(`SET application_name = '${APP}'`);
    let max = 0;
    let count = 0;
    while (running) {
      const started = performance.now();
      await client.query(sql, [1 + (count % 1000)]);
      if (started >= since) max = Math.max(max, performance.now() - started);
      count++;
    }
    await client.end();
    return { max, count };
  });
  const sampler = (async () => {
    const m = await db.connect();
    let lockWait = 0;
    while (running) {
      const { rows } = await m.query<{ ms: number | null }>(
        `SELECT max(extract(epoch FROM clock_timestamp() - query_start) * 1000)::float8 AS ms
           FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
        [APP],
      );
      if (performance.now() >= since) lockWait = Math.max(lockWait, rows[0]?.ms ?? 0);
      await sleep(5);
    }
    await m.end();
    return lockWait;
  })();
  return {
    /** Count only from `t` (performance.now()) on. */
    from: (t) => (since = t),
    stop: async () => {
      running = false;
      const done = await Promise.all(loops);
      return { max: Math.max(...done.map((d) => d.max)), lockWait: await sampler, count: done.reduce((n, d) => n + d.count, 0) };
    },
  };
}

const LOCK_TIMEOUT_MS = 50;

describe('waiting outside the lock queue', () => {
  it('succeeds when a blocker holds the table for 40 lock_timeouts (under max_wait), and application queries meanwhile never wait for a lock more than lock_timeout + 50 ms', async () => {
    // retries: 1 would have given up after two attempts before; the wait is now bounded by max_wait only.
    const dir = await planDir({
      'rename.yaml': `plan: rename-users-email\ntable: public.users\nrename: { column: email, to: email_address }\nguards: { lock_timeout: ${LOCK_TIMEOUT_MS}ms, retries: 1, max_wait: 30s }\n`,
    });
    const args = ['--dir', dir, '--database-url', db.url];
    const app = traffic(db, [
      'SELECT id, email FROM users WHERE id = $1',
      'SELECT id, email FROM users WHERE id = $1 + 1000',
      'UPDATE users SET full_name = full_name WHERE id = $1 + 500',
    ]);
    await sleep(100);

    // A writer holds ROW EXCLUSIVE (and one row) for 2 s: it conflicts with expand's ACCESS EXCLUSIVE and dual-write's SHARE ROW EXCLUSIVE.
    const blocker = await db.connect();
    await blocker.query('BEGIN');
    await blocker.query('UPDATE users SET full_name = full_name WHERE id = 2000');
    const blockerPid = (await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const holdMs = 40 * LOCK_TIMEOUT_MS;

    const run = startCli(['plan', 'apply', '--phase', 'dual-write', ...args], { PGSHIFT_LOG_LEVEL: 'info' });
    // Hold on for 40 lock_timeouts from the moment pgshift starts waiting for the blocker.
    let stderr = '';
    run.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    for (let i = 0; i < 400 && !stderr.includes('waiting outside the lock queue'); i++) await sleep(25);
    const waitingSince = performance.now();
    // From here on (the CLI's start-up, which loads the CPU, is behind us).
    app.from(waitingSince);
    await sleep(holdMs);
    await blocker.query('COMMIT');
    await blocker.end();
    const result = await run.done;
    const waitedMs = performance.now() - waitingSince;
    const { max, lockWait, count } = await app.stop();
    console.log(`application queries while pgshift waited: ${count}, slowest ${max.toFixed(1)} ms, longest lock wait seen ${lockWait.toFixed(1)} ms`);

    expect(result.code).toBe(0);
    expect(result.lines.map((l) => l.to)).toEqual(['dual-write']);
    // It waited for the blocker, said who it was, and never lost an attempt in the queue.
    expect(waitedMs).toBeGreaterThanOrEqual(holdMs);
    expect(result.stderr).not.toContain('lock not granted');
    expect(result.stderr).toMatch(
      new RegExp(`waiting outside the lock queue for [^\\n]*pid ${blockerPid}: idle in transaction for [\\d.]+s, holds RowExclusiveLock on public\\.users`),
    );
    expect(count).toBeGreaterThan(50);
    expect(lockWait).toBeLessThan(LOCK_TIMEOUT_MS + 50);
    expect((await runCli(['plan', 'rollback', 'rename-users-email', '--phase', 'expand', ...args])).code).toBe(0);
    expect((await runCli(['plan', 'rollback', 'rename-users-email', ...args])).code).toBe(0);
  });
});

const SHOP = `
  CREATE SCHEMA shop;
  CREATE TABLE shop.accounts (login text PRIMARY KEY);
  CREATE TABLE shop.users (id bigserial PRIMARY KEY, user_name text NOT NULL UNIQUE REFERENCES shop.accounts (login));
  CREATE INDEX users_lower_user_name_idx ON shop.users (lower(user_name));
  CREATE TABLE shop.orders (id bigserial PRIMARY KEY, user_name text REFERENCES shop.users (user_name));
  INSERT INTO shop.accounts SELECT 'user' || g FROM generate_series(1, 300) g;
  INSERT INTO shop.users (user_name) SELECT 'user' || g FROM generate_series(1, 300) g;
  INSERT INTO shop.orders (user_name) SELECT 'user' || (1 + g % 300) FROM generate_series(1, 600) g;
`;

const SHOP_PLAN = `plan: rename-shop-user-name\ntable: shop.users\nrename: { column: user_name, to: login }\nguards: { lock_timeout: ${LOCK_TIMEOUT_MS}ms, max_wait: 30s }\n`;

describe('a step that locks several tables', () => {
  beforeAll(async () => {
    await db.sql(SHOP);
  });

  it('does not name a session pg_stat_activity shows idle beside a lock pg_locks shows it holding (the two are read at different instants)', async () => {
    const monitor = await db.connect();
    const holder = await db.connect();
    const old = await db.connect();
    try {
      const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const oldPid = (await old.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      // A transaction already old when the monitor looks: it is in the way.
      await old.query('BEGIN');
      await old.query('SELECT count(*) FROM users');
      await sleep(60);
      // Within a transaction the monitor's pg_stat_activity stays what it was at its first read, while pg_locks is
      // read anew: the holder is seen idle, then takes a lock. This is the race between the two reads of one look.
      await monitor.query('BEGIN');
      await monitor.query('SELECT count(*) FROM pg_stat_activity');
      await holder.query('BEGIN');
      await holder.query('SELECT count(*) FROM users');
      await sleep(60);
      const table = {
        oid: (await monitor.query<{ oid: number }>(`SELECT 'users'::regclass::oid::int8::float8 AS oid`)).rows[0]!.oid,
        conflicting: ['AccessShareLock'],
      };
      const seen = await conflictingSessions(monitor, [table], -1, 20);
      expect(seen.map((b) => b.pid)).toEqual([oldPid]);
      expect(holderPid).not.toBe(oldPid);
      await monitor.query('COMMIT');
      // Looked at afresh, the holder's transaction is old enough to count.
      expect((await conflictingSessions(monitor, [table], -1, 20)).map((b) => b.pid).sort()).toEqual([oldPid, holderPid].sort());
    } finally {
      await Promise.all([holder, old].map((c) => c.query('ROLLBACK')));
      await Promise.all([monitor, holder, old].map((c) => c.end()));
    }
  });

  it('plan show claims every table contract locks: the referencing and the referenced table of each foreign key it drops', async () => {
    const dir = await planDir({ 'shop.yaml': SHOP_PLAN });
    const shown = await runCli(['plan', 'show', 'rename-shop-user-name', '--phase', 'contract', '--no-json', '--dir', dir, '--database-url', db.url]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(
      /locks ACCESS EXCLUSIVE on shop\.users, ACCESS EXCLUSIVE on shop\.orders, ACCESS EXCLUSIVE on shop\.accounts, taken first without queuing behind each other/,
    );
    const rollback = await runCli(['plan', 'show', 'rename-shop-user-name', '--phase', 'switch-read', '--no-json', '--dir', dir, '--database-url', db.url]);
    // switch-read's rollback drops the copied foreign keys: the one on orders locks users too; the one to accounts locks accounts.
    expect(rollback.stdout).toMatch(/locks ACCESS EXCLUSIVE on shop\.users, ACCESS EXCLUSIVE on shop\.orders/);
    expect(rollback.stdout).toMatch(/locks ACCESS EXCLUSIVE on shop\.users, ACCESS EXCLUSIVE on shop\.accounts/);
  });

  it('contract waits for a blocker on the referencing table without holding the table meanwhile, names that blocker, and never holds one lock while queued for another under churn', async () => {
    const dir = await planDir({ 'shop.yaml': SHOP_PLAN });
    const args = ['--dir', dir, '--database-url', db.url];
    expect((await runCli(['plan', 'apply', '--phase', 'stop-write', ...args])).code).toBe(0);

    // A long reader of orders: contract must wait for it (dropping orders' foreign key locks orders).
    const blocker = await db.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM shop.orders');
    const blockerPid = (await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const app = traffic(db, ['SELECT id, login FROM shop.users WHERE id = $1 % 300 + 1', 'SELECT id, login FROM shop.users WHERE id = ($1 + 7) % 300 + 1']);

    // Given up after max_wait: the error names the session on orders, the table waited for.
    const gaveUp = await runCli(['plan', 'apply', '--phase', 'contract', '--max-wait', '1s', ...args], { PGSHIFT_LOG_LEVEL: 'info' });
    // The plain index on the old column went CONCURRENTLY before the ACCESS EXCLUSIVE transaction (a reader of
    // users does not stop that); the UNIQUE one stays for the transaction, which drops its constraint.
    expect(gaveUp.stderr).toMatch(/dropping index shop\.users_lower_user_name_idx CONCURRENTLY before the columns go/);
    expect(gaveUp.stderr).not.toMatch(/dropping index shop\.users_user_name_key/);
    expect(gaveUp.code).toBe(3);
    expect(gaveUp.errors).toMatch(/gave up on a lock on shop\.orders after 0 attempt/);
    expect(gaveUp.errors.match(/pid \d+/g)).toEqual([`pid ${blockerPid}`]);
    expect(gaveUp.errors).toContain('AccessShareLock on shop.orders');
    await blocker.query('COMMIT');
    await blocker.end();

    // Churn on orders: short transactions one after another, so contract's attempts race them.
    let churning = true;
    const churn = [0, 1].map(async () => {
      const c = await db.connect();
      while (churning) {
        await c.query('BEGIN');
        await c.query('SELECT count(*) FROM shop.orders');
        await c.query('SELECT pg_sleep(0.015)');
        await c.query('COMMIT');
      }
      await c.end();
    });
    // Watch pg_locks: no session ever holds ACCESS EXCLUSIVE on users while it waits for another lock. The view is
    // read once per look (MATERIALIZED): each reference to pg_locks copies the lock table anew, so a join of the view
    // with itself compares two instants: a runner that held users in one attempt and waited for orders in the next
    // looks like one holding both. pgshift takes every lock after a step's first with NOWAIT, which never queues, so
    // holding one table while queued for another is what this test must catch, and only one look can show it.
    let sampling = true;
    let samples = 0;
    const violations: unknown[] = [];
    const sampler = (async () => {
      const m = await db.connect();
      while (sampling) {
        const { rows } = await m.query(
          `WITH l AS MATERIALIZED (SELECT pid, relation, mode, granted FROM pg_locks)
           SELECT h.pid, w.relation::regclass::text AS waits_for FROM l h JOIN l w ON w.pid = h.pid AND NOT w.granted
            WHERE h.relation = 'shop.users'::regclass AND h.mode = 'AccessExclusiveLock' AND h.granted`,
        );
        violations.push(...rows);
        samples++;
      }
      await m.end();
    })();
    await sleep(200);
    const contract = startCli(['plan', 'apply', '--phase', 'contract', ...args], { PGSHIFT_LOG_LEVEL: 'info' });
    let contractLog = '';
    contract.child.stderr!.on('data', (d: Buffer) => (contractLog += d.toString()));
    for (let i = 0; i < 400 && !contractLog.includes('"phase":"contract"'); i++) await sleep(25);
    app.from(performance.now());
    const done = await contract.done;
    churning = false;
    await Promise.all(churn);
    sampling = false;
    await sampler;
    const { max, lockWait, count } = await app.stop();
    console.log(`application queries during contract: ${count}, slowest ${max.toFixed(1)} ms, longest lock wait seen ${lockWait.toFixed(1)} ms`);

    expect(done.code).toBe(0);
    expect(await db.sql(`SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = 'shop.users'::regclass ORDER BY 1`)).toEqual([
      { name: 'shop.users_login_key' },
      { name: 'shop.users_lower_login_idx' },
      { name: 'shop.users_pkey' },
    ]);
    expect(samples).toBeGreaterThan(20);
    expect(violations).toEqual([]);
    expect(count).toBeGreaterThan(50);
    expect(lockWait).toBeLessThan(LOCK_TIMEOUT_MS + 50);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_constraint WHERE conrelid = 'shop.orders'::regclass AND contype = 'f'`)).toEqual([{ n: 1 }]);
  });
});
