import { ident, qualified, type QualifiedName } from '../db/ident.js';
import { readPartitioning } from '../db/partitions.js';
import type { Logger } from '../log.js';
import type { BackfillState, StateStore } from '../state/store.js';
import type { ColumnChange, PlanFacts } from '../changes/model.js';
import type { ObjectNames } from '../changes/sql-objects.js';
import { connectSpare, sqlState, SqlState, withRolledBackTransaction, type Client, type ConnectionOptions } from '../db/client.js';
import { VERSION } from '../version.js';
import { SPARE_CONNECTION_WAIT_MS } from '../defaults.js';
import type { Guards } from '../plan/types.js';
import { withGuards } from '../guard/guards.js';
import { differsPredicate } from './consistency.js';
import { batchEndSql, keyAsText, keyOrder, onKeyIndex, partitionId, rangeWhere, readKey } from './keyset.js';
import { enterPlanTransaction } from './plan-transaction.js';

/** Rows per verification batch: each is a short read-only transaction. */
const VERIFY_BATCH_ROWS = 50_000;
/** Never fewer rows than this in a batch, however often statement_timeout cuts it. */
const MIN_VERIFY_BATCH_ROWS = 500;
/** How many differing keys a verification reports. */
const SAMPLE_KEYS = 5;

/** What `verify` found. */
export interface VerifyResult {
  readonly differing: number;
  /** The first few differing keys, in key order, each as text per key column. */
  readonly sampleKeys: readonly (readonly string[])[];
  readonly rowsChecked: number;
}

/**
 * Count rows whose old and new columns disagree (NULL-safe, see
 * `differsPredicate`), walking the table in keyset batches so no transaction
 * stays open long and memory stays flat. Each batch is a plain MVCC read
 * (ACCESS SHARE, which conflicts only with ACCESS EXCLUSIVE): it blocks no
 * reader or writer, and waits at most lock_timeout behind DDL. A batch cut
 * by statement_timeout is retried at a quarter of its size.
 */
export async function verifyRows(client: Client, facts: PlanFacts, change: ColumnChange, names: ObjectNames, guards: Guards): Promise<VerifyResult> {
  const key = facts.key;
  const table = qualified(facts.table);
  const differs = differsPredicate(change, names);
  let lastKey: string[] | null = null;
  let differing = 0;
  let rowsChecked = 0;
  let size = VERIFY_BATCH_ROWS;
  const sampleKeys: string[][] = [];
  for (;;) {
    const lower: string[] = lastKey ?? [];
    let batch: { end: string[] | null; checked: number; n: number; samples: string[][] };
    try {
      batch = await withGuards(client, 'guarded', guards, async () => {
        await enterPlanTransaction(client, facts, false);
        const bound = await onKeyIndex(client, () => client.query(batchEndSql(facts.table, key, lastKey !== null, false), [size, ...lower]));
        const end = bound.rows[0] ? readKey(bound.rows[0], key) : null;
        const where = rangeWhere(key, lastKey !== null, end !== null, 1);
        const params = [...lower, ...(end ?? [])];
        const found = await client.query<{ checked: number; n: number }>(
          `SELECT count(*)::float8 AS checked, count(*) FILTER (WHERE ${differs})::float8 AS n FROM ${table} WHERE ${where}`,
          params,
        );
        const n = found.rows[0]?.n ?? 0;
        const want = SAMPLE_KEYS - sampleKeys.length;
        const samples =
          n > 0 && want > 0
            ? (
                await client.query(`SELECT ${keyAsText(key)} FROM ${table} WHERE ${where} AND ${differs} ORDER BY ${keyOrder(key)} LIMIT ${want}`, params)
              ).rows.map((r) => readKey(r, key))
            : [];
        return { end, checked: found.rows[0]?.checked ?? 0, n, samples };
      });
    } catch (error) {
      if (sqlState(error) === SqlState.queryCanceled && size > MIN_VERIFY_BATCH_ROWS) {
        size = Math.max(MIN_VERIFY_BATCH_ROWS, Math.floor(size / 4));
        continue;
      }
      throw error;
    }
    differing += batch.n;
    rowsChecked += batch.checked;
    sampleKeys.push(...batch.samples);
    if (batch.end === null) break;
    lastKey = batch.end;
  }
  return { differing, sampleKeys, rowsChecked };
}

/**
 * Blocks per transaction of the final check, at most (128 MB): each chunk is
 * a short read, so a big table's check never holds back vacuum for long.
 * Smaller tables are cut into about 4 chunks per reader, at least this
 * many blocks (1 MB) each, so the chunks spread evenly over the readers.
 */
const MAX_CHUNK_BLOCKS = 16_384;
const MIN_CHUNK_BLOCKS = 128;
const CHUNKS_PER_READER = 4;
/** The final check never reads with more connections than this, whatever the server allows a parallel scan. */
const MAX_READERS = 4;
/** Past this age of the start horizon, xid comparisons get close to wraparound: read every row instead. */
const MAX_HORIZON_AGE = 1_000_000_000;

/** Why the final check of a backfill reads every row, or null when it may read only the rows changed since their batch. */
export type FullReason = string | null;

/**
 * The final check of the `backfill` phase: what the whole-table `verifyRows`
 * proves, reading only the rows that may have changed since the batch that
 * covered them.
 *
 * Each batch proves its own rows in the statement that writes them: its
 * UPDATE rewrites every row of its key range whose new side is not what the
 * forward expressions give, so when it commits every row version of the
 * range it saw is consistent (and a version it wrote carries its transaction
 * id, recorded with the checkpoint). What the walk did not prove is exactly
 * a live row version created by another transaction that had not ended when
 * the walk started: every older transaction had ended before the horizon the
 * backfill recorded, so the walk's batches saw its rows. So the check reads
 * the rows whose `xmin` is not older than that horizon and is not a batch's,
 * and applies `differsPredicate` to those only: the rows the application (or
 * anything bypassing the trigger) wrote since, and the rows inserted after
 * the walk started.
 *
 * It reads every row, as `verifyRows` does, when that reasoning does not
 * hold: the forward expressions are not immutable (a rewritten row is then
 * not proven by having been written), the backfill was started by a pgshift
 * that did not record its horizon, the set of partitions changed (an
 * attached partition brings rows with old transaction ids that no batch
 * saw), a partition is foreign (no ctid), or the horizon is old enough for
 * xid comparisons to be doubtful. When rows differ, the whole-table count
 * gives the report (how many, the first keys in key order).
 *
 * The scan walks each table in ranges of ctid (a TID range scan, PG 14+), one
 * short read-only transaction per range: ACCESS SHARE, which conflicts only
 * with ACCESS EXCLUSIVE, so it blocks no reader or writer and waits at most
 * lock_timeout behind DDL. It costs a sequential read of the table evaluating
 * no expression on rows it skips. The ranges are read by as many connections
 * as PostgreSQL would give a parallel scan of the table (the runner's and
 * `max_parallel_workers_per_gather` more, at most 4 in all; a TID range
 * scan is not run in parallel by PostgreSQL before 19), the way a parallel
 * sequential scan would read it; 10M rows: 8.7 s on one connection.
 */
export async function verifyBackfill(
  client: Client,
  store: StateStore,
  plan: string,
  facts: PlanFacts,
  change: ColumnChange,
  names: ObjectNames,
  guards: Guards,
  log: Logger,
  connection?: ConnectionOptions,
): Promise<VerifyResult & { readonly full: FullReason }> {
  const state = await store.backfill(plan);
  const tables = await checkedTables(client, facts, state);
  const reason = typeof tables === 'string' ? tables : await mutableForward(client, facts, change);
  if (reason !== null || typeof tables === 'string') {
    log.info({ reason }, `verify reads every row: ${reason}`);
    return { ...(await verifyRows(client, facts, change, names, guards)), full: reason };
  }
  const xids = await store.batchXids(plan);
  const differs = differsPredicate(change, names);
  const sizes: { table: QualifiedName; blocks: number }[] = [];
  for (const table of tables) {
    const { rows } = await client.query<{ blocks: number }>(`SELECT (pg_relation_size($1::regclass) / current_setting('block_size')::int8)::float8 AS blocks`, [
      qualified(table),
    ]);
    sizes.push({ table, blocks: rows[0]!.blocks });
  }
  const total = sizes.reduce((sum, t) => sum + t.blocks, 0);
  const wanted = Math.min(MAX_READERS, Math.max(1, Math.floor(total / MIN_CHUNK_BLOCKS)));
  const extra = connection && wanted > 1 ? await extraReaders(client, connection, wanted - 1) : [];
  const readers = [client, ...extra];
  const chunkBlocks = Math.min(MAX_CHUNK_BLOCKS, Math.max(MIN_CHUNK_BLOCKS, Math.ceil(total / (readers.length * CHUNKS_PER_READER))));
  const chunks: { table: QualifiedName; lo: number; hi: number | null }[] = [];
  // Each table's last range is open-ended: it also reads pages the table grew by meanwhile.
  for (const { table, blocks } of sizes)
    for (let lo = 0; lo === 0 || lo < blocks; lo += chunkBlocks) chunks.push({ table, lo, hi: lo + chunkBlocks < blocks ? lo + chunkBlocks : null });
  const chunkCount = chunks.length;
  let candidates = 0;
  let differing = 0;
  const read = async (reader: Client): Promise<void> => {
    for (let chunk = chunks.shift(); chunk; chunk = chunks.shift()) {
      const { table, lo, hi } = chunk;
      const found = await withGuards(reader, 'guarded', guards, async () => {
        await enterPlanTransaction(reader, facts, false);
        return reader.query<{ candidates: number; n: number }>(
          `SELECT count(*)::float8 AS candidates, count(*) FILTER (WHERE ${differs})::float8 AS n
             FROM ${qualified(table)}
            WHERE ctid >= '(${lo},0)'::tid ${hi === null ? '' : `AND ctid < '(${hi},0)'::tid`}
              AND age(xmin) <= age(pg_catalog.xid($1::xid8)) AND NOT (xmin = ANY ($2::xid[]))`,
          [state!.sinceXid, xids],
        );
      });
      candidates += found.rows[0]?.candidates ?? 0;
      differing += found.rows[0]?.n ?? 0;
    }
  };
  try {
    // The first error stops every reader at its next chunk (the queue is emptied), and is thrown once all have stopped.
    const settled = await Promise.allSettled(
      readers.map((reader) =>
        read(reader).catch((error: unknown) => {
          chunks.length = 0;
          throw error;
        }),
      ),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } finally {
    await Promise.all(extra.map((c) => c.end().catch(() => undefined)));
  }
  log.info(
    { rowsChanged: candidates, batches: xids.length, readers: readers.length, chunks: chunkCount },
    `verify read ${candidates} rows changed since their batch`,
  );
  if (differing > 0) return { ...(await verifyRows(client, facts, change, names, guards)), full: 'rows differ' };
  return { differing: 0, sampleKeys: [], rowsChecked: candidates, full: null };
}

/**
 * Connections for the final check besides the runner's: as many as
 * `max_parallel_workers_per_gather` (none when it is 0: the operator turned
 * parallel scans off), at most `wanted`; fewer when the server refuses more
 * connections or they do not answer in time (`connectSpare`).
 */
async function extraReaders(client: Client, connection: ConnectionOptions, wanted: number): Promise<Client[]> {
  const { rows } = await client.query<{ n: number }>(`SELECT pg_catalog.current_setting('max_parallel_workers_per_gather')::int AS n`);
  const readers: Client[] = [];
  for (let i = 0; i < Math.min(wanted, rows[0]?.n ?? 0); i++) {
    const reader = await connectSpare({ ...connection, applicationName: `pgshift verify ${i + 1} ${VERSION}` }, SPARE_CONNECTION_WAIT_MS);
    if (!reader) break;
    readers.push(reader);
  }
  return readers;
}

/** The tables the final check reads (the table, or its leaf partitions), or why it must read every row instead. */
async function checkedTables(client: Client, facts: PlanFacts, state: BackfillState | null): Promise<QualifiedName[] | string> {
  if (!state?.finishedAt) return 'the backfill has not finished';
  if (!state.sinceXid) return 'the backfill was started by an older pgshift, which did not record where it started';
  const age = await client.query<{ age: number }>(`SELECT pg_catalog.age(pg_catalog.xid($1::xid8))::float8 AS age`, [state.sinceXid]);
  if ((age.rows[0]?.age ?? Infinity) > MAX_HORIZON_AGE) return 'the backfill started too many transactions ago';
  const partitioning = await readPartitioning(client, facts.table);
  if (!partitioning) return state.partitions ? 'the table is no longer partitioned' : [facts.table];
  const leaves = partitioning.partitions.filter((p) => !p.partitioned);
  if (leaves.some((p) => p.foreign)) return 'a partition is a foreign table';
  const now = leaves.map((p) => partitionId(p.table)).sort();
  const then = (state.partitions ?? []).map(partitionId).sort();
  if (now.join('\n') !== then.join('\n')) return 'partitions were attached or detached since the backfill started';
  return leaves.map((p) => p.table);
}

/**
 * Null when every forward expression is immutable, so a row the backfill
 * wrote is proven by having been written; else why not. PostgreSQL decides,
 * as it does for a generated column: one per expression, on a temporary
 * table with the old columns, in a transaction that is rolled back.
 */
async function mutableForward(client: Client, facts: PlanFacts, change: ColumnChange): Promise<FullReason> {
  // Plans whose expressions were printed at start are probed in that form: it is what runs, and under the fixed
  // search_path enterPlanTransaction sets, the text as written would no longer find the names it meant.
  const inline = facts.inline;
  const columns = change.old.map((c, i) => `${ident(c.name)} ${inline ? inline.oldTypes[i] : c.type}`);
  const generated = change.new.map((c, i) => {
    const type = inline ? inline.newTypes[i] : c.type;
    return `pgshift_probe_${i} ${type} GENERATED ALWAYS AS ((${inline ? inline.forward[i] : c.forward})::${type}) STORED`;
  });
  try {
    await withRolledBackTransaction(client, async () => {
      await enterPlanTransaction(client, facts, false);
      await client.query(`CREATE TEMPORARY TABLE pgshift_immutable_probe (${[...columns, ...generated].join(', ')}) ON COMMIT DROP`);
    });
    return null;
  } catch (error) {
    return `the forward expressions are not immutable, or could not be checked (${(error as Error).message})`;
  }
}
