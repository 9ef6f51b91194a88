import { setTimeout as sleep } from 'node:timers/promises';
import { literal, qualified, type QualifiedName } from '../db/ident.js';
import type { ColumnChange, PlanFacts } from '../changes/model.js';
import type { ObjectNames } from '../changes/sql-objects.js';
import type { Client } from '../db/client.js';
import type { Guards, Plan } from '../plan/types.js';
import { withGuards, type RunContext } from '../runner/guards.js';
import type { StateStore } from '../state/store.js';
import { runBatchWithRetries } from './batch.js';
import { BatchSizer } from './batch-size.js';
import { readKey, upperKeySql } from './keyset.js';
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

/**
 * Fill the new columns of every row up to the upper key fixed at the start,
 * one keyset batch per transaction, each sized to take about
 * `backfill.target_batch_ms`. Rows written after the start are kept in sync
 * by the trigger, so the walk always ends however fast inserts come. The
 * checkpoint commits with its batch: a killed runner resumes exactly there,
 * neither skipping nor repeating a committed batch. Between batches it
 * pauses and waits for lagging replicas; at the end it runs ANALYZE.
 */
export async function runBackfill(input: BackfillInput): Promise<BackfillProgress> {
  const { ctx, store, plan, facts } = input;
  const log = ctx.log;
  let state = await store.backfill(plan.name);
  if (!state) {
    const upper = await ctx.client.query(upperKeySql(facts.table, facts.key));
    const estimate = await estimateRows(ctx.client, facts.table, plan.guards);
    await store.startBackfill(plan.name, upper.rows[0] ? readKey(upper.rows[0], facts.key) : null, estimate, plan.backfill.batchSize);
    state = (await store.backfill(plan.name))!;
    log.info({ upperKey: state.upperKey, rowsEstimated: state.rowsEstimated }, `backfill of ${plan.name} up to key ${state.upperKey?.join(', ') ?? '(empty table)'} (~${state.rowsEstimated} rows)`);
  } else if (!state.finishedAt) {
    log.info(
      { lastKey: state.lastKey, rowsDone: state.rowsDone, rowsEstimated: state.rowsEstimated, batchSize: state.batchSize },
      `resuming ${plan.name} backfill at key ${state.lastKey ? state.lastKey.join(', ') : '(start)'} (${state.rowsDone} of ~${state.rowsEstimated} rows done)`,
    );
  }
  const sizer = new BatchSizer(state.batchSize, plan.backfill.targetBatchMs, plan.guards.statementTimeoutMs);
  const startedAt = performance.now();
  const doneAtStart = state.rowsDone;
  let progress: BackfillProgress = {
    plan: plan.name,
    rowsDone: state.rowsDone,
    rowsTotal: Math.max(state.rowsEstimated, state.rowsDone),
    batchSize: sizer.size,
    lastKey: state.lastKey,
    done: state.finishedAt !== null || state.upperKey === null,
    rowsPerSecond: 0,
    etaSeconds: null,
    waiting: null,
  };
  if (progress.done) {
    if (!state.finishedAt) await finish(input);
    input.onProgress?.(progress);
    return progress;
  }
  const upperKey = state.upperKey!;
  const maxLag = plan.backfill.maxReplicaLagMs;
  const hiddenLagWarned = { value: false };
  const lagProbe = new ReplicaLagProbe(ctx.client);
  input.onProgress?.(progress);
  while (!progress.done) {
    if (maxLag !== null && maxLag > 0) {
      await waitForReplicas(lagProbe, maxLag, log, (waiting) => input.onProgress?.({ ...progress, waiting }), hiddenLagWarned);
    }
    ctx.stillHeld?.();
    const batchStarted = performance.now();
    const batch = await runBatchWithRetries(input, sizer, progress.lastKey, upperKey);
    const committedMs = performance.now() - batchStarted;
    const rowsDone = progress.rowsDone + batch.rows;
    const rate = (rowsDone - doneAtStart) / Math.max((performance.now() - startedAt) / 1000, 1e-3);
    const rowsTotal = Math.max(progress.rowsTotal, rowsDone);
    progress = {
      ...progress,
      rowsDone,
      rowsTotal,
      batchSize: sizer.size,
      lastKey: batch.end,
      done: batch.last,
      rowsPerSecond: rate,
      etaSeconds: batch.last ? 0 : rate > 0 ? Math.max(0, rowsTotal - rowsDone) / rate : null,
      waiting: null,
    };
    log.debug(
      { rows: batch.rows, written: batch.written, ms: batch.ms, boundMs: batch.boundMs, updateMs: batch.updateMs, committedMs, next: sizer.size, end: batch.end },
      'backfill batch committed',
    );
    if (batch.last) await finish(input);
    input.onProgress?.(progress);
    if (!batch.last && plan.backfill.pauseMs > 0) await sleep(plan.backfill.pauseMs);
  }
  return progress;
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
