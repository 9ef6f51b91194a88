import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../src/index.js';
import { parseLsn } from '../../src/backfill/throttle.js';
import { capturingLogger, checkpoint, inconsistentRows, splitPlanYaml, waitFor } from '../helpers/backfill.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';
import { startEmbedded, TEST_FLAGS, type TestServer } from '../helpers/server.js';
import type { Plan } from '../../src/plan/types.js';

/**
 * The throttles on what hurts besides replicas, against a real PostgreSQL:
 * a logical replication slot left unconsumed holds the walk until it is
 * consumed (and the slot ends with every row); the WAL rate stays under
 * `max_wal_rate`; `throttle_query` holds the walk while it says true; and
 * `max_active_sessions` while the application's sessions are busy.
 *
 * The file has a server of its own: logical slots need `wal_level=logical`,
 * and the session count and the WAL positions are the server's, which other
 * test files' work on the shared server would move.
 */

let db: TestDatabase;
let server: TestServer | undefined;
beforeAll(async () => {
  server = await startEmbedded({ flags: [...TEST_FLAGS, '-c', 'wal_level=logical', '-c', 'max_replication_slots=4'], prefix: 'pgshift-throttles' });
  db = await freshDatabase(server.adminUrl);
});
// At the file's level: a hook registered inside beforeAll never runs, and the server outlived the run.
afterAll(async () => {
  await db?.client.end().catch(() => undefined);
  await server?.stop();
});

const GUARDS = '{ lock_timeout: 5s, statement_timeout: 20s, retries: 2 }';

async function table(name: string, rows: number): Promise<void> {
  await db.sql(`CREATE TABLE ${name} (id bigserial PRIMARY KEY, full_name text, email text)`);
  await db.sql(`INSERT INTO ${name} (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, ${rows}) g`);
}

/** The split plan `split-<table>` of `public.<table>`, applied up to dual-write. */
async function dualWritten(name: string, backfill: string): Promise<Plan> {
  const p = plan(splitPlanYaml(`split-${name.replaceAll('_', '-')}`, `public.${name}`, backfill, GUARDS));
  expect((await apply([p], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
  return p;
}

const rowsDone = async (p: Plan): Promise<number> => (await checkpoint(db, p.name))?.rows_done ?? 0;
const committed = (messages: string[]): number => messages.filter((m) => m === 'backfill batch committed').length;

/** The walk stands still: no batch committed over a window many batches long (only a lower bound on time is relied on). */
async function standsStill(p: Plan, messages: () => string[]): Promise<void> {
  const held = await rowsDone(p);
  const batches = committed(messages());
  await sleep(1_500);
  expect(await rowsDone(p)).toBe(held);
  expect(committed(messages())).toBe(batches);
}

describe('max_slot_lag', () => {
  it('waits while a logical slot is behind, naming it, and goes on as it is consumed; the slot ends with every row', async () => {
    await table('slotted', 20_000);
    const p = await dualWritten('slotted', '{ batch_size: 1000, target_batch_ms: 0, max_slot_lag: 256kB }');
    await db.sql(`SELECT pg_create_logical_replication_slot('cdc_test', 'test_decoding')`);
    let decodedUpdates = 0;
    const consume = async (): Promise<void> => {
      const rows = await db.sql<{ n: number }>(
        `SELECT count(*) FILTER (WHERE data LIKE 'table public.slotted: UPDATE:%')::int AS n FROM pg_logical_slot_get_changes('cdc_test', NULL, NULL)`,
      );
      decodedUpdates += rows[0]!.n;
    };
    try {
      // What came before the plan's backfill (its setup) is not what the test waits on.
      await consume();
      const { log, messages } = capturingLogger();
      let finished = false;
      const running = apply([p], 'backfill', { databaseUrl: db.url, log }).finally(() => (finished = true));
      const waitLine = await waitFor('the walk to wait for the slot', async () =>
        messages().find((m) => m.startsWith('waiting for logical replication (slot cdc_test ') && m.includes('max_slot_lag 256.0kB')),
      );
      expect(waitLine).toMatch(/slot cdc_test \d+(\.\d)?(kB|MB) behind \(inactive\)/);
      expect(await rowsDone(p)).toBeLessThan(20_000);
      await standsStill(p, messages);
      // Each consumption lets it go on until the slot falls behind again.
      while (!finished) {
        await consume();
        await Promise.race([running, sleep(100)]);
      }
      const [outcome] = await running;
      expect(outcome!.error).toBeUndefined();
      expect(messages().some((m) => m.startsWith('throttles clear after'))).toBe(true);
      // Every row the walk changed reaches the slot (the backfill's updates, and nothing else updated the table).
      // The batches commit asynchronously and a slot decodes only WAL already flushed (the WAL writer does it within
      // wal_writer_delay): read until the last batch is there, never past 20,000.
      await waitFor('every backfilled row decoded', async () => {
        await consume();
        return decodedUpdates >= 20_000;
      });
      expect(decodedUpdates).toBe(20_000);
      expect(await inconsistentRows(db, 'slotted')).toBe(0);
    } finally {
      await db.sql(`SELECT pg_drop_replication_slot('cdc_test')`);
    }
  });

  it('names an inactive slot that stood still for abandoned_slot_after and stops waiting for it', async () => {
    await table('abandoned', 20_000);
    const p = await dualWritten('abandoned', '{ batch_size: 1000, target_batch_ms: 0, max_slot_lag: 256kB, abandoned_slot_after: 2s }');
    await db.sql(`SELECT pg_create_logical_replication_slot('forgotten', 'test_decoding')`);
    try {
      const { log, messages } = capturingLogger();
      const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url, log });
      expect(outcome!.error).toBeUndefined();
      const all = messages();
      const waited = all.findIndex((m) => m.startsWith('waiting for logical replication (slot forgotten '));
      const ignored = all.findIndex((m) => m.startsWith('logical slot forgotten is inactive and has not moved for'));
      expect(waited).toBeGreaterThanOrEqual(0);
      expect(ignored).toBeGreaterThan(waited);
      expect(all[ignored]).toContain(`pg_drop_replication_slot('forgotten')`);
      expect(await inconsistentRows(db, 'abandoned')).toBe(0);
    } finally {
      await db.sql(`SELECT pg_drop_replication_slot('forgotten')`);
    }
  });
});

describe('max_wal_rate', () => {
  // With workers the cap holds for the backfill as a whole (the WAL position is the server's, so it counts both walks).
  it.each([
    ['paced', 1],
    ['paced_workers', 2],
  ])('keeps the WAL written over the backfill phase under the cap within 20 percent (%s, workers: %i)', async (name, workers) => {
    await table(name, 20_000);
    const cap = 1024 * 1024;
    const p = await dualWritten(name, `{ batch_size: 1000, target_batch_ms: 0, max_wal_rate: 1MB/s, workers: ${workers} }`);
    const lsn = async (): Promise<bigint> => parseLsn((await db.sql<{ l: string }>(`SELECT pg_current_wal_lsn()::text AS l`))[0]!.l);
    const { log, messages } = capturingLogger();
    const from = await lsn();
    const started = performance.now();
    const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url, log });
    const seconds = (performance.now() - started) / 1000;
    const written = Number((await lsn()) - from);
    expect(outcome!.error).toBeUndefined();
    // Enough WAL that the cap matters: several seconds' worth.
    expect(written).toBeGreaterThan(3 * cap);
    // Only an upper bound on the rate: a slow machine makes it lower, never higher.
    expect(written / seconds).toBeLessThanOrEqual(cap * 1.2);
    expect(messages().some((m) => m.startsWith('pacing WAL to max_wal_rate 1.0MB/s'))).toBe(true);
    expect(await inconsistentRows(db, name)).toBe(0);
  });
});

describe('throttle_query', () => {
  it('holds the walk while the query says true, and lets it go on when it says false', async () => {
    await table('flagged', 6_000);
    await db.sql(`CREATE TABLE throttle_flag (hold boolean NOT NULL)`);
    await db.sql(`INSERT INTO throttle_flag VALUES (true)`);
    const p = await dualWritten('flagged', `{ batch_size: 500, target_batch_ms: 0, throttle_query: "SELECT hold FROM public.throttle_flag" }`);
    const { log, messages } = capturingLogger();
    const running = apply([p], 'backfill', { databaseUrl: db.url, log });
    await waitFor('the walk to wait for throttle_query', async () => messages().some((m) => m === 'waiting for throttle_query to return false'));
    expect(await rowsDone(p)).toBe(0);
    await standsStill(p, messages);
    await db.sql(`UPDATE throttle_flag SET hold = false`);
    const [outcome] = await running;
    expect(outcome!.error).toBeUndefined();
    expect(await rowsDone(p)).toBe(6_000);
    expect(await inconsistentRows(db, 'flagged')).toBe(0);
  });

  it('fails the backfill when the query does not return one boolean', async () => {
    await table('misflagged', 1_000);
    const p = await dualWritten('misflagged', `{ throttle_query: "SELECT 1" }`);
    const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url, log: capturingLogger().log });
    expect(String(outcome!.error)).toContain('backfill.throttle_query must return one boolean');
    expect(await rowsDone(p)).toBe(0);
  });
});

describe('max_active_sessions', () => {
  it('holds the walk while more application sessions are active, and goes on once they are done', async () => {
    await table('busy', 6_000);
    const p = await dualWritten('busy', '{ batch_size: 500, target_batch_ms: 0, max_active_sessions: 2 }');
    const sessions: pg.Client[] = await Promise.all([1, 2, 3].map(() => db.connect()));
    try {
      const sleeping = sessions.map((s) => s.query(`SELECT pg_sleep(600)`).catch(() => undefined));
      await waitFor('three sessions asleep', async () => {
        const rows = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)' AND state = 'active'`);
        return rows[0]!.n === 3;
      });
      const { log, messages } = capturingLogger();
      const running = apply([p], 'backfill', { databaseUrl: db.url, log });
      await waitFor('the walk to wait for the sessions', async () =>
        messages().some((m) => /^waiting for active sessions \(\d+\) to fall to max_active_sessions 2$/.test(m)),
      );
      expect(await rowsDone(p)).toBe(0);
      await standsStill(p, messages);
      await db.sql(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)'`);
      await Promise.all(sleeping);
      const [outcome] = await running;
      expect(outcome!.error).toBeUndefined();
      expect(await rowsDone(p)).toBe(6_000);
      expect(await inconsistentRows(db, 'busy')).toBe(0);
    } finally {
      await Promise.all(sessions.map((s) => s.end().catch(() => undefined)));
    }
  });
});
