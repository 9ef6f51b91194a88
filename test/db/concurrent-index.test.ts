import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { createIndexConcurrently } from '../../src/changes/constraints.js';
import { apply } from '../../src/index.js';
import { runContext } from '../../src/guard/context.js';
import { runSqlStep } from '../../src/runner/sql-step.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/**
 * CREATE INDEX CONCURRENTLY waits, by design, for every transaction that
 * holds an older snapshot. pgshift lets it wait (no lock or statement
 * timeout), says what it waits for, and when a build is cancelled part-way,
 * the INVALID index it leaves is dropped and built again by the next apply.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(`
    CREATE TABLE users (id bigserial PRIMARY KEY, user_name text NOT NULL);
    CREATE INDEX users_user_name_idx ON users (user_name);
    INSERT INTO users (user_name) SELECT 'user' || g FROM generate_series(1, 2000) g;
    CREATE TABLE items (id bigserial PRIMARY KEY, sku text);
    INSERT INTO items (sku) SELECT 'sku' || g FROM generate_series(1, 2000) g;`);
});

/** Poll until `probe` gives a value, or fail after a generous bound (a hang, not a slow run). */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>): Promise<T> {
  for (let i = 0; i < 1200; i++) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    await sleep(25);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * A session holding a snapshot, and no lock on any table: CREATE INDEX
 * CONCURRENTLY must wait for it to end, while pgshift's other DDL need not.
 */
async function snapshotHolder(): Promise<{ pid: number; end: () => Promise<void> }> {
  const c = await db.connect();
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await c.query('SELECT 1');
  const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  return {
    pid,
    end: async () => {
      await c.query('COMMIT').catch(() => undefined);
      await c.end().catch(() => undefined);
    },
  };
}

async function buildingIndex(): Promise<{ pid: number; phase: string } | undefined> {
  const rows = await db.sql<{ pid: number; phase: string }>(`SELECT pid, phase FROM pg_stat_progress_create_index WHERE relid = 'users'::regclass`);
  return rows[0];
}

async function indexState(name: string): Promise<{ valid: boolean }[]> {
  return db.sql(`SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1`, [name]);
}

describe('CREATE INDEX CONCURRENTLY', () => {
  it('cleans the INVALID index a cancelled build left, on the next apply', async () => {
    const p = plan(`
plan: rename-user-name
table: users
rename: { column: user_name, to: username }
guards: { lock_timeout: 200ms, statement_timeout: 200ms, retries: 2 }`);
    const [started] = await apply([p], 'backfill', { databaseUrl: db.url });
    expect(started!.error).toBeUndefined();

    const holder = await snapshotHolder();
    try {
      const running = apply([p], 'switch-read', { databaseUrl: db.url });
      // The build waits for the holder's snapshot, past both timeouts (200ms), since neither applies to it.
      const build = await waitFor('the copy of the index to wait for the old snapshot', async () => {
        const b = await buildingIndex();
        return b?.phase.startsWith('waiting for old snapshots') ? b : undefined;
      });
      await db.sql('SELECT pg_cancel_backend($1)', [build.pid]);
      const [cancelled] = await running;
      expect(cancelled!.error?.message).toMatch(/canceling statement/);
      expect(cancelled!.to).toBe('backfill');
      expect(await indexState('users_username_idx_pgshift')).toEqual([{ valid: false }]);
    } finally {
      await holder.end();
    }

    const [retried] = await apply([p], 'switch-read', { databaseUrl: db.url });
    expect(retried!.error).toBeUndefined();
    expect(retried!.phases).toEqual(['switch-read']);
    expect(await indexState('users_username_idx_pgshift')).toEqual([{ valid: true }]);
    const invalid = await db.sql(`SELECT indexrelid::regclass AS name FROM pg_index WHERE indrelid = 'users'::regclass AND NOT indisvalid`);
    expect(invalid).toEqual([]);
  });

  it('waits for old snapshots without timeouts and logs its progress, naming the transaction it waits for', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino(
      { level: 'info', base: undefined },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
          done();
        },
      }),
    );
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const ctx = runContext({
      client,
      connection: { databaseUrl: db.url },
      guards: { lockTimeoutMs: 100, statementTimeoutMs: 100, retries: 0, maxWaitMs: 1_000, oldCodeQuietMs: 0 },
      log,
      table: { oid: 0, display: 'public.items' },
      progressEveryMs: 50,
    });
    const index = { schema: 'public', name: 'items_sku_idx' };
    const step = createIndexConcurrently(index, `CREATE INDEX CONCURRENTLY IF NOT EXISTS "items_sku_idx" ON "public"."items" ("sku")`, 'an index on sku');
    expect(step).toMatchObject({ transaction: false, timeouts: 'none', lock: 'SHARE UPDATE EXCLUSIVE' });
    const holder = await snapshotHolder();
    try {
      const running = runSqlStep(ctx, step);
      const waiting = await waitFor('a progress line naming the holder', async () =>
        lines.find((l) => String(l.msg).includes('building index public.items_sku_idx: waiting') && String(l.msg).includes(`pid ${holder.pid}`)),
      );
      expect(waiting.progress).toMatchObject({ phase: 'waiting for old snapshots', currentLockerPid: holder.pid });
      // Meanwhile the application reads and writes the table: SHARE UPDATE EXCLUSIVE blocks neither.
      await db.sql(`INSERT INTO items (sku) VALUES ('during the build'); UPDATE items SET sku = sku || '!' WHERE id = 1`);
      expect(await db.sql(`SELECT sku FROM items WHERE id = 1`)).toEqual([{ sku: 'sku1!' }]);
      expect(await db.sql(`SELECT phase FROM pg_stat_progress_create_index WHERE relid = 'items'::regclass`)).toEqual([{ phase: 'waiting for old snapshots' }]);
      await holder.end();
      expect(await running).toBe('ran');
      expect(await indexState('items_sku_idx')).toEqual([{ valid: true }]);
      // A finished build is not redone.
      expect(await runSqlStep(ctx, step)).toBe('skipped');
    } finally {
      await holder.end();
      await ctx.close();
      await client.end();
    }
  });
});
