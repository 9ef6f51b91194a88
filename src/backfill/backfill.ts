import { setTimeout as sleep } from 'node:timers/promises';
import pRetry, { AbortError } from 'p-retry';
import { literal, qualified } from '../db/ident.js';
import { RETRY_FACTOR, RETRY_MAX_WAIT_MS, RETRY_MIN_WAIT_MS } from '../defaults.js';
import type { ColumnChange, PlanFacts } from '../changes/model.js';
import { BACKFILL_SETTING, type ObjectNames } from '../changes/sql-objects.js';
import { sqlState, SqlState, type Client } from '../db/client.js';
import type { Plan } from '../plan/types.js';
import { isLockConflict, stepFailure, withGuards, type RunContext } from '../runner/guards.js';
import type { StateStore } from '../state/store.js';
import { differsPredicate, fillNewAssignments } from './consistency.js';
import { batchEndSql, rangeWhere, readKey, upperKeySql, type KeyColumns } from './keyset.js';

/** Backfill progress, reported after every batch. */
export interface BackfillProgress {
  readonly plan: string;
  readonly rowsDone: number;
  readonly rowsTotal: number;
  readonly batchSize: number;
  readonly lastKey: readonly string[] | null;
  readonly done: boolean;
}

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
 * Mark a transaction as pgshift's own: the sync trigger stands aside, and
 * user expressions resolve with the plan's search_path whatever the session's.
 */
export async function enterPlanTransaction(client: Client, facts: PlanFacts, backfill: boolean): Promise<void> {
  await client.query(`SELECT set_config('search_path', ${literal(facts.searchPath)}, true)`);
  if (backfill) await client.query(`SELECT set_config(${literal(BACKFILL_SETTING)}, 'on', true)`);
}

/**
 * Fill the new columns of every row up to the upper key fixed at the start,
 * one keyset batch per transaction. Rows written after the start are kept in
 * sync by the trigger, so the walk always ends however fast inserts come. The
 * checkpoint commits with its batch: a killed runner resumes exactly there.
 */
export async function runBackfill(input: BackfillInput): Promise<BackfillProgress> {
  const { ctx, store, plan, facts } = input;
  const key = facts.key;
  let state = await store.backfill(plan.name);
  if (!state) {
    const upper = await ctx.client.query(upperKeySql(facts.table, key));
    const estimate = await ctx.client.query<{ n: number }>(
      `SELECT greatest(reltuples, 0)::float8 AS n FROM pg_class WHERE oid = ${literal(qualified(facts.table))}::regclass`,
    );
    await store.startBackfill(plan.name, upper.rows[0] ? readKey(upper.rows[0], key) : null, estimate.rows[0]?.n ?? 0, plan.backfill.batchSize);
    state = (await store.backfill(plan.name))!;
  } else if (!state.finishedAt) {
    ctx.log.info(
      { plan: plan.name, lastKey: state.lastKey, rowsDone: state.rowsDone, rowsEstimated: state.rowsEstimated },
      `resuming ${plan.name} backfill at key ${state.lastKey ? state.lastKey.join(', ') : '(start)'} (${state.rowsDone} of ~${state.rowsEstimated} rows done)`,
    );
  }
  let progress: BackfillProgress = {
    plan: plan.name,
    rowsDone: state.rowsDone,
    rowsTotal: Math.max(state.rowsEstimated, state.rowsDone),
    batchSize: state.batchSize,
    lastKey: state.lastKey,
    done: state.finishedAt !== null || state.upperKey === null,
  };
  if (progress.done) {
    if (!state.finishedAt) await store.finishBackfill(plan.name);
    input.onProgress?.(progress);
    return progress;
  }
  const upperKey = state.upperKey!;
  let lastKey = state.lastKey;
  const batchSize = plan.backfill.batchSize;
  while (!progress.done) {
    const batch = await runBatchWithRetries(input, key, lastKey, upperKey, batchSize);
    lastKey = batch.end;
    const done = batch.end.every((v, i) => v === upperKey[i]);
    if (done) await store.finishBackfill(plan.name);
    progress = { ...progress, rowsDone: progress.rowsDone + batch.rows, batchSize, lastKey, done };
    progress = { ...progress, rowsTotal: Math.max(progress.rowsTotal, progress.rowsDone) };
    input.onProgress?.(progress);
    if (!done && plan.backfill.pauseMs > 0) await sleep(plan.backfill.pauseMs);
  }
  return progress;
}

/** One batch; a lock conflict with the application (timeout, deadlock, serialization) is retried with backoff. */
async function runBatchWithRetries(
  input: BackfillInput,
  key: KeyColumns,
  lastKey: readonly string[] | null,
  upperKey: readonly string[],
  size: number,
): Promise<{ end: string[]; rows: number }> {
  try {
    return await pRetry(
      async () => {
        try {
          return await runBatch(input, key, lastKey, upperKey, size);
        } catch (error) {
          if (isLockConflict(error) || sqlState(error) === SqlState.serializationFailure) throw error;
          throw new AbortError(error as Error);
        }
      },
      {
        retries: input.plan.guards.retries,
        factor: RETRY_FACTOR,
        minTimeout: RETRY_MIN_WAIT_MS / 5,
        maxTimeout: RETRY_MAX_WAIT_MS,
        randomize: true,
        onFailedAttempt: ({ error, attemptNumber }) =>
          input.ctx.log.warn({ plan: input.plan.name, attempt: attemptNumber, code: sqlState(error) }, `backfill batch retried: ${error.message}`),
      },
    );
  } catch (error) {
    throw stepFailure(`backfill batch after key ${lastKey?.join(', ') ?? '(start)'}`, error instanceof AbortError ? error.originalError : error);
  }
}

async function runBatch(
  input: BackfillInput,
  key: KeyColumns,
  lastKey: readonly string[] | null,
  upperKey: readonly string[],
  size: number,
): Promise<{ end: string[]; rows: number }> {
  const { ctx, store, plan, facts, change, names } = input;
  const client = ctx.client;
  return withGuards(client, 'guarded', plan.guards, async () => {
    await enterPlanTransaction(client, facts, true);
    const lower = lastKey ?? [];
    const bound = await client.query(batchEndSql(facts.table, key, lastKey !== null, true), [size, ...lower, ...upperKey]);
    const end = bound.rows[0] ? readKey(bound.rows[0], key) : [...upperKey];
    const updated = await client.query(
      `UPDATE ${qualified(facts.table)} SET ${fillNewAssignments(change, names)}
        WHERE ${rangeWhere(key, lastKey !== null, true, 1)} AND ${differsPredicate(change, names)}`,
      [...lower, ...end],
    );
    // A full batch covered `size` rows; the last one covered what the update saw at most.
    const rows = bound.rows[0] ? size : (updated.rowCount ?? 0);
    await store.checkpoint(plan.name, end, rows, size);
    return { end, rows };
  });
}
