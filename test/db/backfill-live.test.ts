import type pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { apply, verify } from '../../src/index.js';
import { LockTimeoutError } from '../../src/errors.js';
import { capturingLogger, checkpoint, inconsistentRows, runnerBackend, splitPlanYaml, waitFor } from '../helpers/backfill.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/**
 * The backfill beside a live application: concurrent old-code inserts and
 * updates, an application transaction that deadlocks with a batch, rows
 * locked for longer than lock_timeout, and batches cut by statement_timeout.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

async function table(name: string, rows: number): Promise<void> {
  await db.sql(`CREATE TABLE ${name} (id bigserial PRIMARY KEY, full_name text, email text)`);
  await db.sql(`INSERT INTO ${name} (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, ${rows}) g`);
}

/** Old code writing as fast as it can until stopped: inserts, and updates of random existing rows. */
function oldCodeWriters(tableName: string, clients: number, maxId: number): { stop(): Promise<{ inserts: number; updates: number }> } {
  let running = true;
  const counts = { inserts: 0, updates: 0 };
  const loops = Array.from({ length: clients }, async (_, c) => {
    const client = await db.connect();
    try {
      for (let i = 0; running; i++) {
        if ((i + c) % 2 === 0) {
          await client.query(`INSERT INTO ${tableName} (full_name) VALUES ($1)`, [`New${c}x${i} Person${i}`]);
          counts.inserts++;
        } else {
          await client.query(`UPDATE ${tableName} SET full_name = $2 WHERE id = $1`, [1 + Math.floor(Math.random() * maxId), `Changed${i} Again${c}`]);
          counts.updates++;
        }
      }
    } finally {
      await client.end();
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return counts;
    },
  };
}

const guards = (lock = '1s', statement = '10s', retries = 3): string => `{ lock_timeout: ${lock}, statement_timeout: ${statement}, retries: ${retries} }`;

describe('backfill under live traffic', () => {
  it('ends with every row consistent while old code inserts and updates, and terminates although inserts keep coming', async () => {
    await table('live', 20_000);
    const p = plan(splitPlanYaml('split-live', 'public.live', '{ batch_size: 200, pause: 0ms, target_batch_ms: 20 }', guards()));
    expect((await apply([p], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const writers = oldCodeWriters('live', 3, 20_000);
    await sleep(100);
    const { log, messages } = capturingLogger();
    const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url, log });
    const counts = await writers.stop();
    expect(outcome!.error).toBeUndefined();
    // The writers never stopped during the whole backfill: the fixed upper key let it end anyway.
    expect(counts.inserts).toBeGreaterThan(50);
    expect(counts.updates).toBeGreaterThan(50);
    expect(messages().filter((m) => m === 'backfill batch committed').length).toBeGreaterThan(2);
    expect(await inconsistentRows(db, 'live')).toBe(0);
    expect((await verify(p, { databaseUrl: db.url })).differing).toBe(0);
    // Rows inserted after the start lie above the upper key: the trigger filled them, the backfill never counted them.
    const cp = await checkpoint(db, 'split-live');
    const upper = (await db.sql<{ upper_key: string[] }>(`SELECT upper_key FROM pgshift.backfill WHERE plan = 'split-live'`))[0]!.upper_key;
    const covered = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM live WHERE id <= $1`, [upper[0]]);
    expect(cp!.rows_done).toBe(covered[0]!.n);
  });

  it('retries a batch that deadlocks with an application transaction touching rows in reverse order', async () => {
    await table('dl', 3_000);
    // The batch (one, over every row) must start waiting before the application closes the cycle; the batch's
    // lock wait (lock_timeout, capped by target_batch_ms) is longer than deadlock_timeout, so the deadlock
    // detector, not the lock timeout, breaks the cycle.
    const p = plan(splitPlanYaml('split-dl', 'public.dl', '{ batch_size: 5000, pause: 0ms, target_batch_ms: 5000 }', guards('5s', '20s', 3)));
    expect((await apply([p], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const app = await db.connect();
    try {
      await app.query('BEGIN');
      await app.query(`UPDATE dl SET email = 'app' WHERE id = 3000`);
      const { log, entries } = capturingLogger();
      const running = apply([p], 'backfill', { databaseUrl: db.url, log });
      // The batch has locked rows 1..2999 in key order and now waits for row 3000.
      await waitFor('the batch to wait for the application', async () => (await runnerBackend(db))?.waiting);
      // The application now wants row 1, held by the batch: a deadlock. The batch has waited longer, so its
      // deadlock check runs first and it is the one cancelled; the application's statement then goes through.
      await app.query(`UPDATE dl SET email = 'app' WHERE id = 1`);
      await app.query('COMMIT');
      const [outcome] = await running;
      expect(outcome!.error).toBeUndefined();
      const retried = entries().filter((e) => String(e.msg).includes('retried'));
      expect(retried.map((e) => e.code)).toContain('40P01');
      expect(await inconsistentRows(db, 'dl')).toBe(0);
      expect((await db.sql(`SELECT count(*)::int AS n FROM dl WHERE email = 'app'`))[0]).toEqual({ n: 2 });
    } finally {
      await app.query('ROLLBACK').catch(() => undefined);
      await app.end();
    }
  });

  it('does not wait on a row the application holds for longer than one batch (within lock_timeout), retries, and names the holder', async () => {
    await table('held', 2_000);
    const p = plan(splitPlanYaml('split-held', 'public.held', '{ batch_size: 500, pause: 0ms }', guards('300ms', '10s', 8)));
    expect((await apply([p], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const app = await db.connect();
    const appPid = (await app.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await app.query('BEGIN');
    await app.query(`SELECT * FROM held WHERE id = 1200 FOR UPDATE`);
    const { log, entries } = capturingLogger();
    const running = apply([p], 'backfill', { databaseUrl: db.url, log });
    await waitFor('a lock timeout', async () => entries().some((e) => e.code === '55P03'), 20_000);
    await app.query('COMMIT');
    await app.end();
    const [outcome] = await running;
    expect(outcome!.error).toBeUndefined();
    const timeouts = entries().filter((e) => e.code === '55P03');
    expect(timeouts.length).toBeGreaterThan(0);
    expect(timeouts.some((e) => (e.blockers as { pid: number }[]).some((b) => b.pid === appPid))).toBe(true);
    expect(await inconsistentRows(db, 'held')).toBe(0);
  });

  it('gives up with a lock error (exit 3) when the application holds rows past every retry, keeping the checkpoint', async () => {
    await table('stuck', 2_000);
    const p = plan(splitPlanYaml('split-stuck', 'public.stuck', '{ batch_size: 500, pause: 0ms }', guards('100ms', '10s', 1)));
    expect((await apply([p], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const app: pg.Client = await db.connect();
    try {
      await app.query('BEGIN');
      await app.query(`SELECT * FROM stuck WHERE id = 1700 FOR UPDATE`);
      const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url });
      expect(outcome!.error).toBeInstanceOf(LockTimeoutError);
      expect((outcome!.error as LockTimeoutError).exitCode).toBe(3);
      const cp = await checkpoint(db, 'split-stuck');
      expect(cp!.rows_done).toBeGreaterThan(0);
      expect(cp!.finished).toBe(false);
    } finally {
      await app.query('ROLLBACK');
      await app.end();
    }
    const [again] = await apply([p], 'backfill', { databaseUrl: db.url });
    expect(again!.error).toBeUndefined();
    expect((await checkpoint(db, 'split-stuck'))!.rows_done).toBe(2_000);
  });

  it('shrinks a batch that hits statement_timeout and retries it instead of failing', async () => {
    await db.sql(`CREATE TABLE slow (id bigserial PRIMARY KEY, full_name text)`);
    await db.sql(`INSERT INTO slow (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, 120) g`);
    // 6 ms per call of the first forward expression (twice per row in a batch, once in verify).
    const yaml = splitPlanYaml('split-slow', 'public.slow', '{ batch_size: 120, pause: 0ms }', guards('1s', '1s', 2)).replace(
      "using: split_part(full_name, ' ', 1)",
      "using: split_part(full_name, ' ', 1) || left(pg_sleep(0.006)::text, 0)",
    );
    const p = plan(yaml);
    expect((await apply([p], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const { log, entries } = capturingLogger();
    const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url, log });
    expect(outcome!.error).toBeUndefined();
    const shrunk = entries().filter((e) => String(e.msg).includes('hit statement_timeout'));
    expect(shrunk.length).toBeGreaterThan(0);
    expect(shrunk[0]).toMatchObject({ rows: 120, next: 50 });
    expect((await checkpoint(db, 'split-slow'))!.rows_done).toBe(120);
    expect(await inconsistentRows(db, 'slow')).toBe(0);
  });
});
