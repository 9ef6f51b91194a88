import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, VerificationError } from '../../src/index.js';
import { capturingLogger, checkpoint, inconsistentRows, splitPlanYaml, waitFor } from '../helpers/backfill.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';
import { startEmbedded, type TestServer } from '../helpers/server.js';
import type { Plan } from '../../src/plan/types.js';

/**
 * The backfill phase's final check proves what the whole-table verify
 * proves, reading only the rows that may have changed since the batch that
 * covered them: rows written behind the trigger's back after their batch,
 * or inserted after the walk started, are caught; rows the batches wrote
 * are not read again.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

const GUARDS = '{ lock_timeout: 5s, statement_timeout: 20s, retries: 2 }';
/** Fixed batches of 300 rows with a pause, so the test can act between two batches. */
const SLOW = '{ batch_size: 300, pause: 150ms, target_batch_ms: 0 }';

async function table(name: string, rows: number, on = db): Promise<void> {
  await on.sql(`CREATE TABLE ${name} (id bigserial PRIMARY KEY, full_name text, email text)`);
  await on.sql(`INSERT INTO ${name} (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, ${rows}) g`);
}

/** The split plan `split-<table>` of `public.<table>` (an existing table), applied up to dual-write. */
async function dualWritten(table: string, backfill = SLOW, guards = GUARDS, on = db): Promise<Plan> {
  const p = plan(splitPlanYaml(`split-${table.replaceAll('_', '-')}`, `public.${table}`, backfill, guards));
  expect((await apply([p], 'dual-write', { databaseUrl: on.url }))[0]!.error).toBeUndefined();
  return p;
}

/**
 * Write with the sync trigger out of the way, as a replica-role session (a
 * restore, logical replication) does. Not as the backfill does: since the
 * trigger lost its WHEN clause it stands aside for the backfill only where a
 * backfill write can reach it, so an old-side write under the backfill's
 * setting is kept in sync all the same.
 */
async function behindTheTrigger(sql: string): Promise<void> {
  const c = await db.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SET LOCAL session_replication_role = replica`);
    await c.query(sql);
    await c.query('COMMIT');
  } finally {
    await c.end();
  }
}

/** Start `p`'s backfill with its log captured, and return once `rows` rows are walked: the test then acts between two batches. */
async function backfillPast(p: Plan, rows: number): Promise<{ running: ReturnType<typeof apply>; entries: () => Record<string, unknown>[] }> {
  const { log, entries } = capturingLogger();
  const running = apply([p], 'backfill', { databaseUrl: db.url, log });
  await waitFor(`${rows} rows walked`, async () => ((await checkpoint(db, p.name))?.rows_done ?? 0) >= rows);
  return { running, entries };
}

/** The `verify read N rows changed since their batch` figure, or undefined when the check read every row. */
function rowsChanged(entries: Record<string, unknown>[]): number | undefined {
  const line = entries.find((e) => String(e.msg).startsWith('verify read '));
  return line ? (line.rowsChanged as number) : undefined;
}

describe('the backfill phase final check', () => {
  it('reads only the rows the application changed since their batch, and passes', async () => {
    await table('fc_clean', 3_000);
    const p = await dualWritten('fc_clean');
    const { running, entries } = await backfillPast(p, 1_500);
    // Old code, through the trigger: two rows already walked, one not yet, and a new row.
    await db.sql(`UPDATE fc_clean SET full_name = 'Ada Lovelace' WHERE id IN (10, 20, 2900)`);
    await db.sql(`INSERT INTO fc_clean (full_name) VALUES ('Grace Hopper')`);
    const [outcome] = await running;
    expect(outcome!.error).toBeUndefined();
    expect(await inconsistentRows(db, 'fc_clean')).toBe(0);
    // Rows 10, 20 and the insert were written after their batch. Row 2900, written before its batch, was
    // already in sync (the trigger), so its batch left it alone: its version is the application's, read too.
    expect(rowsChanged(entries())).toBe(4);
    expect(entries().some((e) => String(e.msg).startsWith('verify reads every row'))).toBe(false);
  });

  it('catches rows written behind the trigger after their batch, and a row inserted so after the walk started (exit 4)', async () => {
    await table('fc_tampered', 3_000);
    const p = await dualWritten('fc_tampered');
    const { running, entries } = await backfillPast(p, 1_500);
    await behindTheTrigger(`UPDATE fc_tampered SET full_name = 'Ada Lovelace' WHERE id = 100`);
    await behindTheTrigger(`INSERT INTO fc_tampered (id, full_name) VALUES (5000, 'Grace Hopper')`);
    const [outcome] = await running;
    expect(outcome!.error).toBeInstanceOf(VerificationError);
    const error = outcome!.error as VerificationError;
    expect(error.exitCode).toBe(4);
    expect(error.rows).toBe(2);
    expect(error.sampleKeys).toEqual([['100'], ['5000']]);
    expect(rowsChanged(entries())).toBe(2);
  });

  it('reads a bigger table with several connections, as a parallel scan would, and still catches every row written behind the trigger', async () => {
    await table('fc_wide', 40_000);
    const p = await dualWritten('fc_wide', '{ batch_size: 2000, pause: 150ms, target_batch_ms: 0 }');
    const { running, entries } = await backfillPast(p, 20_000);
    // One row at the start of the table, one inserted at its end: different chunks, read by different connections.
    await behindTheTrigger(`UPDATE fc_wide SET full_name = 'Ada Lovelace' WHERE id = 3`);
    await behindTheTrigger(`INSERT INTO fc_wide (id, full_name) VALUES (50000, 'Grace Hopper')`);
    const [outcome] = await running;
    expect(outcome!.error).toBeInstanceOf(VerificationError);
    expect((outcome!.error as VerificationError).sampleKeys).toEqual([['3'], ['50000']]);
    const line = entries().find((e) => String(e.msg).startsWith('verify read '))!;
    // The server's default max_parallel_workers_per_gather (2): the runner's connection and two more.
    expect(line.readers).toBe(3);
    expect(line.chunks as number).toBeGreaterThan(3);
    expect(line.rowsChanged).toBe(2);
  });

  it('reads every row when a forward expression is not immutable, since a written row then proves nothing', async () => {
    await table('fc_volatile', 500);
    const yaml = splitPlanYaml('split-fc-volatile', 'public.fc_volatile', '{ batch_size: 100, pause: 0ms }', GUARDS).replace(
      "using: split_part(full_name, ' ', 1)",
      "using: split_part(full_name, ' ', 1) || left(random()::text, 0)",
    );
    const p = plan(yaml);
    expect((await apply([p], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const { log, entries } = capturingLogger();
    const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url, log });
    expect(outcome!.error).toBeUndefined();
    expect(rowsChanged(entries())).toBeUndefined();
    expect(entries().find((e) => String(e.msg).startsWith('verify reads every row'))?.msg).toMatch(/not immutable/);
  });

  it('reads every row of a backfill started without a recorded horizon (an older pgshift)', async () => {
    await table('fc_older', 2_000);
    const p = await dualWritten('fc_older');
    const { running, entries } = await backfillPast(p, 600);
    // What a backfill begun before state schema version 3 looks like once upgraded.
    await db.sql(`UPDATE pgshift.backfill SET since_xid = NULL WHERE plan = 'split-fc-older'`);
    await behindTheTrigger(`UPDATE fc_older SET full_name = 'Ada Lovelace' WHERE id = 7`);
    const [outcome] = await running;
    expect(outcome!.error).toBeInstanceOf(VerificationError);
    expect((outcome!.error as VerificationError).sampleKeys).toEqual([['7']]);
    expect(rowsChanged(entries())).toBeUndefined();
    expect(entries().find((e) => String(e.msg).startsWith('verify reads every row'))?.msg).toMatch(/older pgshift/);
  });

  it('reads every row when a partition was attached during the walk, and catches the rows it brought', async () => {
    await db.sql(`CREATE TABLE fc_parts (id bigint NOT NULL, full_name text, email text, PRIMARY KEY (id)) PARTITION BY RANGE (id)`);
    await db.sql(`CREATE TABLE fc_parts_1 PARTITION OF fc_parts FOR VALUES FROM (1) TO (1001)`);
    await db.sql(`CREATE TABLE fc_parts_2 PARTITION OF fc_parts FOR VALUES FROM (1001) TO (2001)`);
    await db.sql(`CREATE TABLE fc_parts_3 PARTITION OF fc_parts FOR VALUES FROM (2001) TO (3001)`);
    await db.sql(`INSERT INTO fc_parts (id, full_name) SELECT g, 'First' || g || ' Last' || g FROM generate_series(1, 3000) g`);
    const p = await dualWritten('fc_parts');
    // A table made before the walk starts, with the new columns empty: its rows are older than the walk.
    await db.sql(`CREATE TABLE fc_parts_4 (LIKE fc_parts)`);
    await db.sql(`INSERT INTO fc_parts_4 (id, full_name) VALUES (3001, 'Grace Hopper')`);
    const { running, entries } = await backfillPast(p, 600);
    await db.sql(`ALTER TABLE fc_parts ATTACH PARTITION fc_parts_4 FOR VALUES FROM (3001) TO (4001)`);
    const [outcome] = await running;
    expect(outcome!.error).toBeInstanceOf(VerificationError);
    expect((outcome!.error as VerificationError).sampleKeys).toEqual([['3001']]);
    expect(entries().find((e) => String(e.msg).startsWith('verify reads every row'))?.msg).toMatch(/partitions were attached/);
  });
});

describe('reading each batch back beside the walk', () => {
  // A server of its own: whether the read-back can prune a page depends on every transaction on the server, not only
  // on this database's. PostgreSQL decides that a replaced version is dead to everyone from the reading snapshot's
  // xmin, which counts transactions in every database; a batch of another test file's backfill, running on the shared
  // server while this walk's batch is read back, keeps that batch's replaced versions (measured: one open transaction
  // in another database, and all 900 stay). The read-back then proves nothing here, though pgshift did its part.
  let solo: TestDatabase;
  let server: TestServer | undefined;
  beforeAll(async () => {
    server = await startEmbedded({ prefix: 'pgshift-read-back' });
    solo = await freshDatabase(server.adminUrl);
  });
  // At the suite's level: a hook registered inside beforeAll never runs, and the server outlived the run.
  afterAll(async () => {
    await solo?.client.end().catch(() => undefined);
    await server?.stop();
  });

  it('prunes the versions each batch replaced while the walk goes on, before the final check reads the table', async () => {
    await table('fc_prune', 3_000, solo);
    // Nothing else may read the table meanwhile: no autovacuum.
    await solo.sql(`ALTER TABLE fc_prune SET (autovacuum_enabled = false)`);
    await solo.sql(`CREATE EXTENSION IF NOT EXISTS pageinspect`);
    const p = await dualWritten('fc_prune', SLOW, GUARDS, solo);
    const { log, entries } = capturingLogger();
    const running = apply([p], 'backfill', { databaseUrl: solo.url, log });
    // Waited for in the log, not by polling the server: a query of the test's own, running as a batch is read back,
    // holds a snapshot taken while that batch ran, and keeps the versions it replaced (measured: 1 run in 6 with a
    // poll every 25 ms).
    const endOf =
      (msg: string) =>
      (e: Record<string, unknown>): boolean =>
        e.msg === msg && Number((e.end as string[])[0]) >= 900;
    await waitFor('the first three batches read back', async () => entries().some(endOf('backfill: read back a committed range')));
    // The first three batches' row versions, read off the pages raw (reading them through SQL would prune them): the
    // versions they wrote are there, the ones they replaced (an older xmin, their xmax) are gone. A pruned line
    // pointer holds no tuple. (A written version carries its batch's id as xmax too: the row lock the trigger took.)
    const pages = await solo.sql<{ written: number; replaced: number }>(
      `WITH first AS (SELECT array_agg(pg_catalog.xid(xid)::text) AS xids
                        FROM (SELECT xid FROM pgshift.backfill_batches WHERE plan = 'split-fc-prune' ORDER BY xid LIMIT 3) AS b)
       SELECT count(*) FILTER (WHERE t_xmin::text = ANY (f.xids))::int AS written,
              count(*) FILTER (WHERE t_xmax::text = ANY (f.xids) AND NOT t_xmin::text = ANY (f.xids))::int AS replaced
         FROM first AS f,
              generate_series(0, pg_relation_size('fc_prune') / current_setting('block_size')::int - 1) AS b,
              heap_page_items(get_raw_page('fc_prune', b::int))`,
    );
    // ... and so before the final check, which prunes every page it reads, began: the walk had not ended.
    const walkEnded = entries().some((e) => e.msg === 'backfill batch committed' && Number((e.end as string[])[0]) >= 3_000);
    const [outcome] = await running;
    expect(outcome!.error).toBeUndefined();
    expect(walkEnded).toBe(false);
    expect(pages).toEqual([{ written: 900, replaced: 0 }]);
  });
});

describe('the ANALYZE after the backfill', () => {
  it('runs ANALYZE beside the final check, on its own connection, waiting past lock_timeout for a maintenance lock (as an autovacuum holds), which queues no application query', async () => {
    await table('an_busy', 2_000);
    const p = await dualWritten('an_busy', '{ batch_size: 500, pause: 0ms }', '{ lock_timeout: 100ms, statement_timeout: 20s, retries: 2 }');
    // What VACUUM and ANALYZE hold: SHARE UPDATE EXCLUSIVE, for far longer than lock_timeout.
    const vacuum = await db.connect();
    await vacuum.query('BEGIN');
    await vacuum.query('LOCK TABLE an_busy IN SHARE UPDATE EXCLUSIVE MODE');
    const { log, messages } = capturingLogger();
    const running = apply([p], 'backfill', { databaseUrl: db.url, log });
    await waitFor('the ANALYZE waiting for its lock', async () => {
      const rows = await db.sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'ANALYZE %an_busy%' AND application_name LIKE 'pgshift analyze %'`,
      );
      return rows[0]!.n > 0;
    });
    await new Promise((r) => setTimeout(r, 1_000));
    // The application reads and writes meanwhile, unhindered.
    await db.sql(`UPDATE an_busy SET full_name = 'Ada Lovelace' WHERE id = 1`);
    await db.sql(`INSERT INTO an_busy (full_name) VALUES ('Grace Hopper')`);
    await vacuum.query('COMMIT');
    await vacuum.end();
    const [outcome] = await running;
    expect(outcome!.error).toBeUndefined();
    // The final check did not wait for the ANALYZE: it was done while the ANALYZE still waited for its lock.
    const analyzed = messages().findIndex((m) => m.startsWith('analyzed public.an_busy after the backfill'));
    const checked = messages().findIndex((m) => m.startsWith('verify read '));
    expect(analyzed).toBeGreaterThan(-1);
    expect(checked).toBeGreaterThan(-1);
    expect(checked).toBeLessThan(analyzed);
    const stats = await db.sql<{ attname: string }>(
      `SELECT attname FROM pg_stats WHERE tablename = 'an_busy' AND attname IN ('first_name', 'last_name') ORDER BY 1`,
    );
    expect(stats.map((s) => s.attname)).toEqual(['first_name', 'last_name']);
  });
});
