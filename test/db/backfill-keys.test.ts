import { beforeAll, describe, expect, it } from 'vitest';
import { apply, verify } from '../../src/index.js';
import { capturingLogger, checkpoint, inconsistentRows, splitPlanYaml, waitFor } from '../helpers/backfill.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/**
 * The keyset walk over every kind of key a plan may have: each row is
 * covered exactly once (rows_done equals the table's rows), whatever the key
 * type, its collation, or how many columns it has.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

const ROWS = 1_000;
const TABLES: Record<string, { ddl: string; fill: string; key?: string }> = {
  bigint: {
    ddl: `CREATE TABLE k_bigint (id bigint PRIMARY KEY, full_name text)`,
    // Sparse and negative keys: batches are by position in the key, not by value arithmetic.
    fill: `INSERT INTO k_bigint SELECT g * 7919 - 3000000, 'First' || g || ' Last' || g FROM generate_series(1, ${ROWS}) g`,
  },
  uuid: {
    ddl: `CREATE TABLE k_uuid (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), full_name text)`,
    fill: `INSERT INTO k_uuid (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, ${ROWS}) g`,
  },
  text: {
    // A non-default collation and awkward values: the batch bounds must sort exactly as the index does.
    ddl: `CREATE TABLE k_text (code text COLLATE "C" PRIMARY KEY, full_name text)`,
    fill: `INSERT INTO k_text SELECT (ARRAY['a', 'B', 'ä', ' ', 'it''s', 'x,y', '"q"'])[1 + g % 7] || g, 'First' || g || ' Last' || g
             FROM generate_series(1, ${ROWS}) g`,
  },
  composite: {
    ddl: `CREATE TABLE k_composite (tenant int, seq int, note text, full_name text, PRIMARY KEY (tenant, seq))`,
    fill: `INSERT INTO k_composite SELECT g % 13, g, NULL, 'First' || g || ' Last' || g FROM generate_series(1, ${ROWS}) g`,
  },
  'explicit key': {
    // No primary key at all: the plan names a unique, not-null key of two columns.
    ddl: `CREATE TABLE k_explicit (a text NOT NULL, b timestamptz NOT NULL, full_name text, UNIQUE (a, b))`,
    fill: `INSERT INTO k_explicit SELECT 'n' || (g % 10), timestamptz '2026-01-01 00:00:00.123456+00' + g * interval '1 second', 'First' || g || ' Last' || g
             FROM generate_series(1, ${ROWS}) g`,
    key: 'key: [a, b]',
  },
};

describe('backfill over keys of every shape', () => {
  for (const [kind, t] of Object.entries(TABLES)) {
    it(`covers every row exactly once with a ${kind} key`, async () => {
      await db.sql(t.ddl);
      await db.sql(t.fill);
      const table = t.ddl.match(/CREATE TABLE (\w+)/)![1]!;
      // A few rows with NULL or one-word names: NULL-safe comparisons all the way.
      await db.sql(`UPDATE ${table} SET full_name = CASE WHEN random() < 0.5 THEN NULL ELSE 'Cher' END WHERE ctid IN (SELECT ctid FROM ${table} LIMIT 20)`);
      const name = `split-${table.replaceAll('_', '-')}`;
      const p = plan(
        splitPlanYaml(
          name,
          `public.${table}`,
          '{ batch_size: 37, pause: 0ms, target_batch_ms: 5 }',
          '{ lock_timeout: 1s, statement_timeout: 10s, retries: 2 }',
          t.key ?? '',
        ),
      );
      const { log, messages } = capturingLogger();
      const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url, log });
      expect(outcome!.error).toBeUndefined();
      expect(outcome!.to).toBe('backfill');
      expect(await inconsistentRows(db, table)).toBe(0);
      const cp = await checkpoint(db, name);
      expect(cp).toMatchObject({ rows_done: ROWS, finished: true });
      expect(messages().filter((m) => m === 'backfill batch committed').length).toBeGreaterThan(3);
      expect((await verify(p, { databaseUrl: db.url })).differing).toBe(0);
    });
  }
});

describe('batch ends found ahead', () => {
  it('looks up the next batch end on a connection of its own while a batch runs, and still covers every row exactly once', async () => {
    await db.sql(`CREATE TABLE k_ahead (id bigint PRIMARY KEY, full_name text)`);
    await db.sql(`INSERT INTO k_ahead SELECT g * 3, 'First' || g || ' Last' || g FROM generate_series(1, ${ROWS}) g`);
    const p = plan(
      splitPlanYaml(
        'split-k-ahead',
        'public.k_ahead',
        '{ batch_size: 50, pause: 20ms, target_batch_ms: 0 }',
        '{ lock_timeout: 1s, statement_timeout: 10s, retries: 2 }',
      ),
    );
    const { log, entries } = capturingLogger();
    const running = apply([p], 'backfill', { databaseUrl: db.url, log });
    const seen = await waitFor('the batch-end connection', async () => {
      const rows = await db.sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'pgshift bounds%'`,
      );
      return rows[0]!.n > 0 ? rows[0]!.n : undefined;
    });
    expect(seen).toBe(1);
    const [outcome] = await running;
    expect(outcome!.error).toBeUndefined();
    expect(await inconsistentRows(db, 'k_ahead')).toBe(0);
    expect(await checkpoint(db, 'split-k-ahead')).toMatchObject({ rows_done: ROWS, finished: true });
    // Every batch but the first had its end looked up while the batch before it ran.
    const batches = entries().filter((e) => e.msg === 'backfill batch committed');
    expect(batches.length).toBe(ROWS / 50);
    expect(batches.map((b) => b.ahead)).toEqual([false, ...Array<boolean>(ROWS / 50 - 1).fill(true)]);
  });
});
