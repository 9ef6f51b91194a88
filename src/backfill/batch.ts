import { setTimeout as sleep } from 'node:timers/promises';
import { qualified } from '../db/ident.js';
import { RETRY_FACTOR, RETRY_MAX_WAIT_MS, RETRY_MIN_WAIT_MS } from '../defaults.js';
import { sqlState, SqlState } from '../db/client.js';
import { LockTimeoutError, type Blocker } from '../errors.js';
import type { Guards } from '../plan/types.js';
import { isLockConflict, stepFailure, watchBlockers, withGuards } from '../runner/guards.js';
import type { BackfillInput } from './backfill.js';
import { enterPlanTransaction } from './plan-transaction.js';
import type { BatchSizer } from './batch-size.js';
import { fillNewAssignments, newSideStale } from './consistency.js';
import { batchEndSql, onKeyIndex, rangeCountSql, rangeWhere, readKey, type KeyValue } from './keyset.js';

/** A committed batch. */
export interface BatchResult {
  /** The key the batch ended at (inclusive): the new checkpoint. */
  readonly end: string[];
  /** Rows the batch covered (keys in its range), whether or not they needed writing. */
  readonly rows: number;
  /** Rows actually rewritten (the others were already in sync). */
  readonly written: number;
  readonly ms: number;
  /** Of which: finding the batch's end key, and the UPDATE (for the debug log and the benchmark). */
  readonly boundMs: number;
  readonly updateMs: number;
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
 * Run the batch after `lower` and commit it with its checkpoint; on a
 * conflict with the application, roll back and try again:
 * - lock_timeout (rows locked by the application), deadlock, serialization
 *   failure: wait with exponential backoff and jitter, up to `guards.retries`
 *   times; lock timeouts that run out become a `LockTimeoutError` (exit 3)
 *   naming who held the rows;
 * - statement_timeout: shrink the batch and retry at once, until the
 *   minimum size also times out.
 */
export async function runBatchWithRetries(input: BackfillInput, sizer: BatchSizer, lower: KeyValue | null, upper: KeyValue): Promise<BatchResult> {
  const { plan } = input;
  const guards = batchGuards(plan.guards, sizer.targetMs);
  // The watcher asks who blocks us halfway through the batch's own lock timeout.
  const ctx = { ...input.ctx, guards };
  let conflicts = 0;
  let blockers: Blocker[] = [];
  for (;;) {
    const size = sizer.size;
    const started = performance.now();
    const watch = watchBlockers(ctx);
    try {
      return await runBatch(input, guards, sizer, size, lower, upper);
    } catch (error) {
      const ms = performance.now() - started;
      const code = sqlState(error);
      const where = `backfill batch after key ${lower?.join(', ') ?? '(start)'}`;
      const timeoutMs = plan.guards.statementTimeoutMs;
      if (code === SqlState.queryCanceled && timeoutMs > 0 && ms >= timeoutMs * TIMEOUT_SHARE && sizer.timedOut()) {
        ctx.log.warn({ rows: size, ms: Math.round(ms), next: sizer.size }, `${where}: ${size} rows hit statement_timeout; retrying with ${sizer.size}`);
        continue;
      }
      const conflict = isLockConflict(error) || code === SqlState.serializationFailure;
      if (code === SqlState.lockNotAvailable) blockers = await watch.result();
      if (conflict && conflicts < plan.guards.retries) {
        conflicts++;
        const wait = Math.min(RETRY_MAX_WAIT_MS, FIRST_RETRY_WAIT_MS * RETRY_FACTOR ** (conflicts - 1)) * (1 + Math.random());
        ctx.log.warn(
          { attempt: conflicts, retriesLeft: plan.guards.retries - conflicts, code, blockers, waitMs: Math.round(wait) },
          `${where} retried: ${(error as Error).message}`,
        );
        await sleep(wait);
        continue;
      }
      if (code === SqlState.lockNotAvailable) {
        throw new LockTimeoutError(ctx.table.display, `${where} (rows locked by the application)`, conflicts + 1, blockers, { cause: error });
      }
      throw stepFailure(where, error);
    } finally {
      watch.stop();
    }
  }
}

/**
 * One batch in one transaction:
 * 1. find the key that ends the batch by walking the key's index from the
 *    lower key (ACCESS SHARE, plain MVCC read: blocks nobody);
 * 2. update the range (ROW EXCLUSIVE on the table, which conflicts only with
 *    SHARE and stronger, i.e. DDL and CREATE INDEX without CONCURRENTLY, so
 *    the application's reads and writes go on; row locks on the rows it
 *    rewrites, which a concurrent writer of the same row waits for until the
 *    batch commits, so batches are kept short). Only rows whose new side is
 *    not what `using` gives are rewritten; in READ COMMITTED a row changed by the application while
 *    the batch waited is re-checked and recomputed from its new version;
 * 3. move the checkpoint in the same transaction.
 */
async function runBatch(input: BackfillInput, guards: Guards, sizer: BatchSizer, size: number, lower: KeyValue | null, upper: KeyValue): Promise<BatchResult> {
  const { ctx, store, plan, facts, change, names } = input;
  const client = ctx.client;
  const key = facts.key;
  const started = performance.now();
  return withGuards(client, 'guarded', guards, async () => {
    await enterPlanTransaction(client, facts, true);
    const low = lower ?? [];
    const t0 = performance.now();
    const bound = await onKeyIndex(client, () => client.query(batchEndSql(facts.table, key, lower !== null, true), [size, ...low, ...upper]));
    const found = bound.rows[0];
    const end = found ? readKey(found, key) : [...upper];
    const t1 = performance.now();
    const updated = await client.query(
      `UPDATE ${qualified(facts.table)} SET ${fillNewAssignments(change, names)}
        WHERE ${rangeWhere(key, lower !== null, true, 1)} AND ${newSideStale(change, names)}`,
      [...low, ...end],
    );
    const t2 = performance.now();
    // Only the last, partial batch needs counting: a full one covered exactly `size` keys.
    const rows = found ? size : ((await client.query<{ n: number }>(rangeCountSql(facts.table, key, lower !== null), [...low, ...end])).rows[0]?.n ?? 0);
    const last = !found || end.every((v, i) => v === upper[i]);
    const ms = performance.now() - started;
    sizer.observe(rows, ms);
    await store.checkpoint(plan.name, end, rows, sizer.size);
    return { end, rows, written: updated.rowCount ?? 0, ms, boundMs: t1 - t0, updateMs: t2 - t1, last };
  });
}
