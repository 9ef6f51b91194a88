import { setTimeout as sleep } from 'node:timers/promises';
import { literal, qualified, type QualifiedName } from '../db/ident.js';
import type { ColumnChange, PlanFacts } from '../changes/model.js';
import type { ObjectNames } from '../changes/sql-objects.js';
import type { Client } from '../db/client.js';
import type { Guards, Plan } from '../plan/types.js';
import { withGuards, type RunContext } from '../runner/guards.js';
import { readPartitioning } from '../db/partitions.js';
import type { BackfillPartition, BackfillState, StateStore } from '../state/store.js';
import { runBatchWithRetries } from './batch.js';
import { BatchSizer } from './batch-size.js';
import { partitionId, readKey, upperKeySql, type KeyValue } from './keyset.js';
import { ReplicaLagProbe, waitForReplicas } from './throttle.js';

export { enterPlanTransaction } from './plan-transaction.js';

/** Backfill progress, reported after every batch and while waiting for replicas. */
export interface BackfillProgress {
  readonly plan: string;
  readonly rowsDone: number;
  /** Estimated rows to cover (never below `rowsDone`). */
  readonly rowsTotal: number;
  /** Rows in the next batch (adaptive). */
  readonly batchSize: number;
  readonly lastKey: readonly string[] | null;
  /** The partition being walked (`schema.name`), for a partitioned table. */
  readonly partition?: string | null | undefined;
  readonly done: boolean;
  /** Rows per second in this run (0 until the first batch). */
  readonly rowsPerSecond: number;
  /** Seconds left at this run's rate; null while unknown. */
  readonly etaSeconds: number | null;
  /** Why the backfill is waiting right now (replica lag), or null. */
  readonly waiting: string | null;
}

/** What a backfill needs: the runner's context and state store, the plan, and its compiled change. */
export interface BackfillInput {
  readonly ctx: RunContext;
  readonly store: StateStore;
  readonly plan: Plan;
  readonly facts: PlanFacts;
  readonly change: ColumnChange;
  readonly names: ObjectNames;
  readonly onProgress?: ((progress: BackfillProgress) => void) | undefined;
}

/** One key range walked in keyset batches: the table, or one leaf partition of a partitioned table. */
export interface Segment {
  readonly table: QualifiedName;
  /** Last key when the walk started (inclusive). */
  readonly upper: KeyValue;
  /** `schema.name` of the partition (the checkpoint names it); null for a plain table. */
  readonly id: string | null;
  /** The partition the checkpoint moves to when this one is done; undefined for the last segment. */
  readonly next?: string | undefined;
}

/**
 * Fill the new columns of every row up to the upper key fixed at the start,
 * one keyset batch per transaction, each sized to take about
 * `backfill.target_batch_ms`. Rows written after the start are kept in sync
 * by the trigger, so the walk always ends however fast inserts come. The
 * checkpoint commits with its batch: a killed runner resumes exactly there,
 * neither skipping nor repeating a committed batch. Between batches it
 * pauses and waits for lagging replicas; at the end it runs ANALYZE.
 *
 * A partitioned table is walked one leaf partition at a time, each on its
 * own key index up to its own upper key; the checkpoint names the partition
 * it is in, and the batch that finishes a partition moves it to the start of
 * the next one.
 */
export async function runBackfill(input: BackfillInput): Promise<BackfillProgress> {
  const { ctx, store, plan, facts } = input;
  const log = ctx.log;
  let state = await store.backfill(plan.name);
  if (!state) {
    await startBackfill(input);
    state = (await store.backfill(plan.name))!;
    const where = state.partitions
      ? `${state.partitions.length} partitions, one at a time`
      : `up to key ${state.upperKey?.join(', ') ?? '(empty table)'}`;
    log.info({ upperKey: state.upperKey, partitions: state.partitions, rowsEstimated: state.rowsEstimated }, `backfill of ${plan.name} ${where} (~${state.rowsEstimated} rows)`);
  } else if (!state.finishedAt) {
    log.info(
      { partition: state.partition, lastKey: state.lastKey, rowsDone: state.rowsDone, rowsEstimated: state.rowsEstimated, batchSize: state.batchSize },
      `resuming ${plan.name} backfill ${state.partition ? `in partition ${state.partition} ` : ''}at key ${state.lastKey ? state.lastKey.join(', ') : '(start)'} (${state.rowsDone} of ~${state.rowsEstimated} rows done)`,
    );
  }
  const segments = remainingSegments(facts.table, state);
  const sizer = new BatchSizer(state.batchSize, plan.backfill.targetBatchMs, plan.guards.statementTimeoutMs);
  const startedAt = performance.now();
  const doneAtStart = state.rowsDone;
  let progress: BackfillProgress = {
    plan: plan.name,
    rowsDone: state.rowsDone,
    rowsTotal: Math.max(state.rowsEstimated, state.rowsDone),
    batchSize: sizer.size,
    lastKey: state.lastKey,
    partition: state.partition,
    done: state.finishedAt !== null || segments.length === 0,
    rowsPerSecond: 0,
    etaSeconds: null,
    waiting: null,
  };
  if (progress.done) {
    if (!state.finishedAt) await finish(input);
    input.onProgress?.(progress);
    return progress;
  }
  const maxLag = plan.backfill.maxReplicaLagMs;
  const hiddenLagWarned = { value: false };
  const lagProbe = new ReplicaLagProbe(ctx.client);
  input.onProgress?.(progress);
  let lower: KeyValue | null = state.lastKey;
  for (const [i, segment] of segments.entries()) {
    if (i > 0) lower = null;
    if (segment.id) log.info({ partition: segment.id, upperKey: segment.upper }, `backfill of ${plan.name}: partition ${segment.id}${lower ? ` from key ${lower.join(', ')}` : ''}`);
    for (;;) {
      if (maxLag !== null && maxLag > 0) {
        await waitForReplicas(lagProbe, maxLag, log, (waiting) => input.onProgress?.({ ...progress, waiting }), hiddenLagWarned);
      }
      ctx.stillHeld?.();
      const batchStarted = performance.now();
      const batch = await runBatchWithRetries(input, sizer, segment, lower);
      const committedMs = performance.now() - batchStarted;
      const rowsDone = progress.rowsDone + batch.rows;
      const rate = (rowsDone - doneAtStart) / Math.max((performance.now() - startedAt) / 1000, 1e-3);
      const rowsTotal = Math.max(progress.rowsTotal, rowsDone);
      const done = batch.last && segment.next === undefined;
      progress = {
        ...progress,
        rowsDone,
        rowsTotal,
        batchSize: sizer.size,
        lastKey: batch.end,
        partition: segment.id,
        done,
        rowsPerSecond: rate,
        etaSeconds: done ? 0 : rate > 0 ? Math.max(0, rowsTotal - rowsDone) / rate : null,
        waiting: null,
      };
      log.debug(
        { rows: batch.rows, written: batch.written, ms: batch.ms, boundMs: batch.boundMs, updateMs: batch.updateMs, committedMs, next: sizer.size, end: batch.end, partition: segment.id },
        'backfill batch committed',
      );
      if (done) await finish(input);
      input.onProgress?.(progress);
      if (!done && plan.backfill.pauseMs > 0) await sleep(plan.backfill.pauseMs);
      if (batch.last) break;
      lower = batch.end;
    }
  }
  return progress;
}

/**
 * Fix what the walk covers and record it: first the transaction horizon
 * (every transaction before it had ended, so every row version it did not
 * write is seen by the walk, which the final check relies on), then the
 * upper key, of the table or of each leaf partition, read after it.
 */
async function startBackfill(input: BackfillInput): Promise<void> {
  const { ctx, store, plan, facts } = input;
  const horizon = await ctx.client.query<{ x: string }>(`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x`);
  const since = horizon.rows[0]!.x;
  const partitioning = await readPartitioning(ctx.client, facts.table);
  if (!partitioning) {
    const upper = await ctx.client.query(upperKeySql(facts.table, facts.key));
    const estimate = await estimateRows(ctx.client, facts.table, plan.guards);
    await store.startBackfill(plan.name, upper.rows[0] ? readKey(upper.rows[0], facts.key) : null, estimate, plan.backfill.batchSize, since);
    return;
  }
  const partitions: BackfillPartition[] = [];
  let estimate = 0;
  for (const leaf of partitioning.partitions.filter((p) => !p.partitioned)) {
    const upper = await ctx.client.query(upperKeySql(leaf.table, facts.key));
    partitions.push({ schema: leaf.table.schema, name: leaf.table.name, upperKey: upper.rows[0] ? readKey(upper.rows[0], facts.key) : null });
    estimate += await estimateRows(ctx.client, leaf.table, plan.guards);
  }
  await store.startBackfill(plan.name, null, estimate, plan.backfill.batchSize, since, partitions);
}

/** What is left to walk: the partitions from the checkpoint's on (the empty ones skipped), or the table. */
export function remainingSegments(table: QualifiedName, state: BackfillState): Segment[] {
  if (state.finishedAt) return [];
  if (!state.partitions) return state.upperKey ? [{ table, upper: state.upperKey, id: null }] : [];
  const at = Math.max(0, state.partitions.findIndex((p) => partitionId(p) === state.partition));
  const left = state.partitions.slice(at).filter((p) => p.upperKey !== null);
  return left.map((p, i) => ({
    table: { schema: p.schema, name: p.name },
    upper: p.upperKey!,
    id: partitionId(p),
    next: i + 1 < left.length ? partitionId(left[i + 1]!) : undefined,
  }));
}

/**
 * Mark the backfill finished, then ANALYZE the table: every row got a new
 * version and the new columns have no statistics yet, so plans of the
 * application's queries on them would be guesses. ANALYZE takes SHARE UPDATE
 * EXCLUSIVE, which conflicts only with VACUUM, ANALYZE, CREATE INDEX
 * CONCURRENTLY and DDL, never with reads or writes; it waits at most
 * lock_timeout (autovacuum on the table yields to it after deadlock_timeout),
 * and a failure only warns: statistics are a courtesy, not correctness.
 */
async function finish(input: BackfillInput): Promise<void> {
  const { ctx, store, plan, facts } = input;
  await store.finishBackfill(plan.name);
  const started = performance.now();
  try {
    await withGuards(ctx.client, 'guarded', plan.guards, () => ctx.client.query(`ANALYZE ${qualified(facts.table)}`));
    ctx.log.info({ ms: Math.round(performance.now() - started) }, `analyzed ${facts.table.schema}.${facts.table.name} after the backfill`);
  } catch (error) {
    ctx.log.warn({ err: (error as Error).message }, `could not ANALYZE ${facts.table.schema}.${facts.table.name} after the backfill; run it when convenient`);
  }
}

/**
 * Rows in the table, as the planner would estimate them: `reltuples` scaled to
 * the table's current size. A table never vacuumed nor analyzed has no
 * estimate (-1): it is ANALYZEd first (SHARE UPDATE EXCLUSIVE, which blocks
 * no reads or writes, waited for at most lock_timeout), which also gives the
 * batches' UPDATE statistics to plan with. If that fails the estimate is 0
 * and the progress total grows with the rows done.
 */
export async function estimateRows(client: Client, table: QualifiedName, guards: Guards): Promise<number> {
  const read = async (): Promise<number | null> =>
    (
      await client.query<{ n: number | null }>(
        `SELECT CASE WHEN c.reltuples < 0 THEN NULL
                     WHEN c.relpages = 0 THEN c.reltuples
                     ELSE c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::int8)
                END::float8 AS n
           FROM pg_class c WHERE c.oid = ${literal(qualified(table))}::regclass`,
      )
    ).rows[0]?.n ?? null;
  let n = await read();
  if (n === null) {
    await withGuards(client, 'guarded', guards, () => client.query(`ANALYZE ${qualified(table)}`)).catch(() => undefined);
    n = await read();
  }
  return Math.round(n ?? 0);
}
