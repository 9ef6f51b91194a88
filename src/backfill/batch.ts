import pRetry, { AbortError } from 'p-retry';
import type pg from 'pg';
import { qualified } from '../db/ident.js';
import { RETRY_FACTOR, RETRY_MAX_WAIT_MS, RETRY_MIN_WAIT_MS } from '../defaults.js';
import { sqlState, SqlState } from '../db/client.js';
import { LockTimeoutError, type Blocker } from '../errors.js';
import type { Guards } from '../plan/types.js';
import { isLockConflict } from '../db/client.js';
import { stepFailure, watchBlockers } from '../guard/guards.js';
import type { BackfillInput, Segment } from './input.js';
import { planTransactionSettings } from './plan-transaction.js';
import type { BatchSizer } from './batch-size.js';
import { differsPredicate, fillNewAssignments, newSideStale } from './consistency.js';
import { rangeWhereLiteral, type KeyValue } from './keyset.js';
import type { BatchEnd, BatchEnds } from './bounds.js';

/** A committed batch. */
export interface BatchResult {
  /** The key the batch ended at (inclusive): the new checkpoint. */
  readonly end: string[];
  /** Rows the batch covered (keys in its range), whether or not they needed writing. */
  readonly rows: number;
  /** Rows actually rewritten (the others were already in sync). */
  readonly written: number;
  readonly ms: number;
  /** Of which: waiting for the batch's end key (found ahead, mostly), and the batch's statements up to COMMIT (for the debug log and the benchmark). */
  readonly boundMs: number;
  readonly updateMs: number;
  /** The end key was looked up ahead, while the previous batch ran. */
  readonly ahead: boolean;
  /** The batch reached the upper key. */
  readonly last: boolean;
}

/** Backfill retries start sooner than DDL retries: a batch conflicts with single rows, not with a whole table. */
const FIRST_RETRY_WAIT_MS = RETRY_MIN_WAIT_MS / 5;
/** A query cancel counts as our statement_timeout when the statement ran at least this share of it (locale-free). */
const TIMEOUT_SHARE = 0.9;
/** A batch waits at least this long for a row, however short its target: an application's own short transactions must not fail it. */
const MIN_ROW_WAIT_MS = 100;

/**
 * The guards of one batch. A batch waiting for a row the application holds
 * keeps every row it has already updated locked, and the application's
 * writers of those rows wait behind it; so it waits no longer than about one
 * batch (its target duration, never more than the plan's lock_timeout), then
 * rolls back, releasing them all, and retries after a backoff.
 */
export function batchGuards(guards: Guards, targetMs: number | null): Guards {
  const rowWait = targetMs === null ? guards.lockTimeoutMs : Math.max(MIN_ROW_WAIT_MS, targetMs);
  return { ...guards, lockTimeoutMs: Math.min(guards.lockTimeoutMs, rowWait) };
}

/**
 * Run the batch after `lower` in `segment` and commit it with its
 * checkpoint; on a conflict with the application, roll back and try again:
 * - lock_timeout (rows locked by the application), deadlock, serialization
 *   failure: wait with exponential backoff and jitter (p-retry), up to
 *   `guards.retries` times; lock timeouts that run out become a
 *   `LockTimeoutError` (exit 3) naming who held the rows;
 * - statement_timeout: shrink the batch and retry at once, until the
 *   minimum size also times out (this does not use up a retry).
 */
export async function runBatchWithRetries(
  input: BackfillInput,
  sizer: BatchSizer,
  segment: Segment,
  lower: KeyValue | null,
  ends: BatchEnds,
): Promise<BatchResult> {
  const { plan } = input;
  const guards = batchGuards(plan.guards, sizer.targetMs);
  // The watcher asks who blocks us halfway through the batch's own lock timeout.
  const ctx = { ...input.ctx, guards };
  const where = `backfill batch ${segment.id ? `in partition ${segment.id} ` : ''}${segment.worker !== undefined ? `of worker ${segment.worker} ` : ''}after key ${lower?.join(', ') ?? '(start)'}`;
  let attempts = 0;
  let blockers: Blocker[] = [];
  /** One attempt; a statement_timeout shrinks the batch and runs it again at once, within the attempt. */
  const attempt = async (): Promise<BatchResult> => {
    attempts++;
    for (;;) {
      const size = sizer.size;
      const started = performance.now();
      const watch = watchBlockers(ctx);
      try {
        const bound = await ends.find(segment, lower, size);
        const boundMs = performance.now() - started;
        // The next batch's end is looked up while this one runs.
        if (bound.end) ends.prefetch(segment, bound.end, size);
        return await runBatch(input, guards, sizer, segment, bound, lower, boundMs);
      } catch (error) {
        const ms = performance.now() - started;
        const code = sqlState(error);
        const timeoutMs = plan.guards.statementTimeoutMs;
        if (code === SqlState.queryCanceled && timeoutMs > 0 && ms >= timeoutMs * TIMEOUT_SHARE && sizer.timedOut()) {
          ctx.log.warn({ rows: size, ms: Math.round(ms), next: sizer.size }, `${where}: ${size} rows hit statement_timeout; retrying with ${sizer.size}`);
          continue;
        }
        if (!(isLockConflict(error) || code === SqlState.serializationFailure)) throw new AbortError(error as Error);
        if (code === SqlState.lockNotAvailable) blockers = await watch.result();
        throw error;
      } finally {
        watch.stop();
      }
    }
  };
  try {
    return await pRetry(attempt, {
      retries: plan.guards.retries,
      factor: RETRY_FACTOR,
      minTimeout: FIRST_RETRY_WAIT_MS,
      maxTimeout: RETRY_MAX_WAIT_MS,
      randomize: true,
      onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
        if (retriesLeft <= 0) return;
        const code = sqlState(error);
        const waitMs = Math.min(RETRY_MAX_WAIT_MS, FIRST_RETRY_WAIT_MS * RETRY_FACTOR ** (attemptNumber - 1));
        ctx.log.warn(
          {
            attempt: attemptNumber,
            retriesLeft: retriesLeft - 1,
            code,
            blockers: code === SqlState.lockNotAvailable ? blockers : [],
            waitMs: [waitMs, Math.min(RETRY_MAX_WAIT_MS, 2 * waitMs)],
          },
          `${where} retried: ${error.message}`,
        );
      },
    });
  } catch (error) {
    if (sqlState(error) === SqlState.lockNotAvailable) {
      throw new LockTimeoutError(ctx.table.display, `${where} (rows locked by the application)`, attempts, blockers, { cause: error });
    }
    throw stepFailure(where, error);
  }
}

/**
 * One batch in one transaction:
 * 1. update the range after the lower key up to the batch's end (ROW
 *    EXCLUSIVE on the table, which conflicts only with SHARE and stronger,
 *    i.e. DDL and CREATE INDEX without CONCURRENTLY, so the application's
 *    reads and writes go on; row locks on the rows it rewrites, which a
 *    concurrent writer of the same row waits for until the batch commits, so
 *    batches are kept short). Only rows whose new side is not what `using`
 *    gives are rewritten; in READ COMMITTED a row changed by the application
 *    while the batch waited is re-checked and recomputed from its new
 *    version. When it commits, every row of the range it saw is consistent:
 *    the batch proves its own rows (see `verifyBackfill`);
 * 2. move the checkpoint in the same transaction, with the batch's
 *    transaction id.
 * With plans walked alongside (`BackfillInput.alongside`), the one UPDATE
 * sets every plan's new columns, of rows where any plan's new side is stale
 * (a row right for one plan gets that plan's own value again), and every
 * plan's checkpoint moves in the batch's transaction.
 *
 * With `input.bypass` (a runner that may set `session_replication_role`)
 * the UPDATE is preceded by the lock it takes anyway and the setting that
 * skips the sync trigger where nothing else would be skipped
 * (trigger-bypass.ts).
 * The end key was found beforehand (`BatchEnds`), so a batch is two round
 * trips, the values written as literals so that several statements share
 * one message: BEGIN, the guards and settings and the UPDATE (and, for the
 * last, partial batch of a segment, the count of its rows); then the
 * checkpoint and COMMIT. COMMIT is not sent with the UPDATE: a runner killed
 * while its batch waits for a row must never have that batch commit after
 * it.
 */
async function runBatch(
  input: BackfillInput,
  guards: Guards,
  sizer: BatchSizer,
  segment: Segment,
  bound: BatchEnd,
  lower: KeyValue | null,
  boundMs: number,
): Promise<BatchResult> {
  const { ctx, store, plan, facts } = input;
  // Every plan this walk fills: their new columns in one UPDATE, each row written once for all of them.
  const filled = [input, ...(input.alongside ?? [])];
  const client = ctx.client;
  const key = facts.key;
  const table = segment.table;
  const upper = segment.upper;
  const started = performance.now();
  const multi = async (sql: string): Promise<pg.QueryResult[]> => {
    const result = (await client.query(sql)) as unknown as pg.QueryResult | pg.QueryResult[];
    return Array.isArray(result) ? result : [result];
  };
  try {
    const end: string[] = [...(bound.end ?? upper)];
    const last = !bound.end || end.every((v, i) => v === upper[i]);
    const range = rangeWhereLiteral(key, lower, end);
    const head = [
      'BEGIN',
      `SET LOCAL lock_timeout = ${Math.round(guards.lockTimeoutMs)}`,
      `SET LOCAL statement_timeout = ${Math.round(guards.statementTimeoutMs)}`,
      planTransactionSettings(facts, true, input.inPlace !== undefined),
      ...(input.bypass?.statements(table) ?? []),
      input.inPlace
        ? `UPDATE ${qualified(table)} AS ${input.inPlace.alias} SET ${input.inPlace.set} WHERE ${range} AND ${input.inPlace.stale}`
        : `UPDATE ${qualified(table)} SET ${filled.map((p) => fillNewAssignments(p.change, p.names)).join(', ')}
        WHERE ${range} AND (${input.onlyDiffering ? differsPredicate(input.change, input.names) : filled.map((p) => newSideStale(p.change, p.names)).join(' OR ')})`,
    ];
    // A full batch covered exactly `size` keys; the last, partial one counts its own.
    const results = await multi([...head, ...(bound.end ? [] : [`SELECT count(*)::float8 AS n FROM ${qualified(table)} WHERE ${range}`])].join(';\n'));
    const updated = results[head.length - 1]!;
    const rows = bound.end ? bound.size : Number((results.at(-1)!.rows[0] as { n: number }).n);
    // The checkpoint records the size this batch was sized with, for a resumed run; the batch that finishes a partition
    // moves it to the start of the next one.
    const checkpoint =
      segment.worker !== undefined
        ? store.checkpointRangeSql(plan.name, segment.worker, end, rows, sizer.size, last)
        : last && segment.next !== undefined
          ? store.checkpointSql(plan.name, null, rows, sizer.size, segment.next)
          : store.checkpointSql(plan.name, end, rows, sizer.size, segment.id);
    // The other plans' checkpoints move with this one, in the batch's transaction (their walks are never split in ranges).
    const alongside = filled.slice(1).map((p) => store.checkpointSql(p.plan.name, end, rows, sizer.size, segment.id));
    // COMMIT goes only once the UPDATE is seen done: a runner killed while its batch waits never commits it.
    await multi([checkpoint, ...alongside, 'COMMIT'].join(';\n'));
    const ms = performance.now() - started;
    sizer.observe(rows, ms + boundMs);
    return { end, rows, written: updated.rowCount ?? 0, ms: ms + boundMs, boundMs, updateMs: ms, ahead: bound.ahead, last };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
