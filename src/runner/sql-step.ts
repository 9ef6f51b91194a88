import pRetry, { AbortError } from 'p-retry';
import { RETRY_FACTOR, RETRY_MAX_WAIT_MS, RETRY_MIN_WAIT_MS } from '../defaults.js';
import { backendPid, isLockConflict } from '../db/client.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { qualified } from '../db/ident.js';
import { conflictingSessions, lockHoldersOn } from '../db/locks.js';
import { describeBlocker, LockTimeoutError, type Blocker } from '../errors.js';
import { dropInvalidLeftover, watchIndexProgress } from './concurrent-index.js';
import { resolveLocks, waitOutsideQueue, watched, type ResolvedLock } from './lock-wait.js';
import { conflictingLockNames, type LockMode, type SqlStep } from '../changes/steps.js';
import type { RunContext } from '../guard/context.js';
import { stepFailure, timeoutSettings, watchBlockers, withGuards } from '../guard/guards.js';
import { recordMetric } from '../telemetry.js';

/**
 * Run one SQL step under its guards. A step that takes a table lock waits
 * for it outside PostgreSQL's lock queue (`runOutsideQueue`), up to
 * `guards.max_wait`; a step with no lock timeout (CREATE INDEX
 * CONCURRENTLY) is retried on a deadlock with exponential backoff and
 * jitter. When the wait runs out, a `LockTimeoutError` names the blockers.
 */
export async function runSqlStep(ctx: RunContext, step: SqlStep): Promise<'ran' | 'skipped'> {
  ctx.stillHeld?.();
  if (step.lock !== 'none' && step.timeouts !== 'none') return runOutsideQueue(ctx, step);
  let blockers: Blocker[] = [];
  let attempts = 0;
  try {
    return await pRetry(
      async () => {
        attempts++;
        if (await skipped(ctx, step)) return 'skipped' as const;
        try {
          await execute(ctx, step, []);
          return 'ran' as const;
        } catch (error) {
          if (!isLockConflict(error)) throw new AbortError(error as Error);
          blockers = await lockHoldersOn(ctx.client, ctx.table.oid, backendPid(ctx.client)).catch(() => []);
          throw error;
        }
      },
      {
        retries: ctx.guards.retries,
        factor: RETRY_FACTOR,
        minTimeout: RETRY_MIN_WAIT_MS,
        maxTimeout: RETRY_MAX_WAIT_MS,
        randomize: true,
        onFailedAttempt: ({ attemptNumber, retriesLeft }) => {
          ctx.log.warn(
            { step: step.description, attempt: attemptNumber, retriesLeft, blockers },
            `lock conflict on ${ctx.table.display}` + (blockers.length ? `; blocked by ${blockers.map(describeBlocker).join('; ')}` : ''),
          );
        },
      },
    );
  } catch (error) {
    const cause = error instanceof AbortError ? error.originalError : error;
    if (isLockConflict(cause)) throw new LockTimeoutError(ctx.table.display, step.description, attempts, blockers, { cause });
    throw stepFailure(step.description, cause);
  }
}

async function skipped(ctx: RunContext, step: SqlStep): Promise<boolean> {
  if (!step.skipIf) return false;
  const { rows } = await ctx.client.query<{ done: boolean }>(step.skipIf);
  return rows[0]?.done === true;
}

/**
 * Wait outside the lock queue, then attempt; again until the step ran or
 * `max_wait` is spent. Each attempt is made only when no session holds or
 * awaits a conflicting lock on the step's tables, with the short per-attempt
 * `lock_timeout`: if a transaction slipped in between the look and the
 * attempt, the application queues behind pgshift for at most that long.
 * A step locking several tables takes them all first (see `execute`).
 * A lost attempt is followed by a short backoff with jitter, doubling after
 * each, so an unseen blocker (a lock on something other than the tables)
 * costs the application one short wait now and then, not a steady stream.
 */
async function runOutsideQueue(ctx: RunContext, step: SqlStep): Promise<'ran' | 'skipped'> {
  const started = Date.now();
  const deadline = started + ctx.guards.maxWaitMs;
  let attempts = 0;
  let queuedFailures = 0;
  // The table a NOWAIT failed on goes first next time: it is the busy one, and
  // the first table is the one waited for (with nothing held yet).
  let busy: string | null = null;
  for (;;) {
    ctx.stillHeld?.();
    if (await skipped(ctx, step)) return 'skipped';
    const locks = firstAmong(await resolveLocks(ctx, step), busy);
    // A lock no application query conflicts with (SHARE UPDATE EXCLUSIVE:
    // VALIDATE) queues no application query behind it, so it may wait in the
    // queue, and long enough (past deadlock_timeout) for PostgreSQL to cancel
    // an autovacuum in its way, as it does for a queued lock request.
    const inQueue = !locks.some((l) => conflictsWithApplication(l.mode));
    const waitStarted = Date.now();
    const wait = inQueue ? ({ clear: true } as const) : await waitOutsideQueue(ctx, step, watched(locks), deadline, started);
    if (!inQueue) recordMetric('lockWait', Date.now() - waitStarted, { table: ctx.table.display, gaveUp: !wait.clear });
    if (!wait.clear) {
      throw new LockTimeoutError(blockedTables(wait.blockers, locks) ?? ctx.table.display, step.description, attempts, wait.blockers, {
        waitedMs: Date.now() - started,
      });
    }
    attempts++;
    const at = { lock: locks[0]! };
    const attemptCtx = inQueue ? { ...ctx, guards: { ...ctx.guards, lockTimeoutMs: Math.max(ctx.guards.lockTimeoutMs, HARMLESS_ATTEMPT_MS) } } : ctx;
    const watch = watchBlockers(attemptCtx);
    try {
      await execute(attemptCtx, step, locks, (l) => (at.lock = l));
      return 'ran';
    } catch (error) {
      if (!isLockConflict(error)) throw stepFailure(step.description, error);
      // The blocker of the table that was waited for: pg_blocking_pids while
      // the first lock waited, else who conflicts on the table a NOWAIT failed on.
      const nowait = at.lock !== locks[0];
      let blockers = nowait ? [] : await watch.result();
      if (!blockers.length && at.lock.oid !== null) {
        blockers = await conflictingSessions(await ctx.monitor(), watched([at.lock]), backendPid(ctx.client)).catch(() => []);
      }
      const waited = Date.now() - started;
      ctx.log.warn(
        { step: step.description, attempt: attempts, table: at.lock.display, blockers, waitedMs: waited, leftMs: Math.max(0, deadline - Date.now()) },
        `lock not granted within ${attemptCtx.guards.lockTimeoutMs} ms on ${at.lock.display} (attempt ${attempts})` +
          (blockers.length ? `; blocked by ${blockers.map(describeBlocker).join('; ')}` : ''),
      );
      if (Date.now() >= deadline) throw new LockTimeoutError(at.lock.display, step.description, attempts, blockers, { cause: error, waitedMs: waited });
      // A NOWAIT failure cost the application nothing it would notice (the
      // first lock was held for a round trip): try again soon, the busy table
      // first. A timed-out wait made queries queue for lock_timeout: back off.
      if (nowait) busy = at.lock.display;
      else queuedFailures++;
      const backoff = nowait
        ? LOST_ATTEMPT_BACKOFF_MS * Math.random()
        : Math.min(MAX_LOST_ATTEMPT_BACKOFF_MS, LOST_ATTEMPT_BACKOFF_MS * 2 ** Math.min(queuedFailures - 1, 10)) * (1 + Math.random());
      await sleep(Math.max(0, Math.min(backoff, deadline - Date.now())));
    } finally {
      watch.stop();
    }
  }
}

/**
 * The lock_timeout of an attempt at a lock no application query conflicts
 * with: longer than PostgreSQL's default deadlock_timeout (1 s), after which
 * a queued request cancels an autovacuum holding the table.
 */
const HARMLESS_ATTEMPT_MS = 2_000;

/** Does `mode` conflict with what application queries take (ACCESS SHARE, ROW SHARE, ROW EXCLUSIVE)? */
function conflictsWithApplication(mode: LockMode): boolean {
  return conflictingLockNames(mode).some((m) => m === 'AccessShareLock' || m === 'RowShareLock' || m === 'RowExclusiveLock');
}

/** After a lost attempt, wait at least this long (doubling, with jitter) before looking again. */
const LOST_ATTEMPT_BACKOFF_MS = 50;
/** … and at most twice this long: max_wait, not the backoff, bounds the whole wait. */
const MAX_LOST_ATTEMPT_BACKOFF_MS = 1_000;

/** `locks` with the one displayed as `first` moved to the front. */
function firstAmong(locks: ResolvedLock[], first: string | null): ResolvedLock[] {
  const i = first === null ? -1 : locks.findIndex((l) => l.display === first);
  return i <= 0 ? locks : [locks[i]!, ...locks.slice(0, i), ...locks.slice(i + 1)];
}

/** The step's tables the blockers' `mode` texts name (`… on <schema>.<table>`), for the error. */
function blockedTables(blockers: readonly Blocker[], locks: readonly ResolvedLock[]): string | undefined {
  const named = locks.filter((l) => blockers.some((b) => (b.mode ?? '').split(', ').some((m) => m.endsWith(` on ${l.display}`))));
  return named.length ? named.map((l) => l.display).join(', ') : undefined;
}

/**
 * Run the step's statements. A step locking several tables first takes
 * every lock it needs, in its transaction: the first table's waiting at most
 * lock_timeout, every other `NOWAIT`. A step that waited for a second
 * table's lock while holding the first (ACCESS EXCLUSIVE on the plan's
 * table, say) would queue every query on the first behind a session busy on
 * the second; with NOWAIT it fails at once, the transaction rolls back
 * releasing the first, and the whole step waits outside the queue again.
 * `LOCK TABLE` takes exactly the lock the statements would take (the mode
 * `locks` declares), so it adds no lock, only moves it to the start. A
 * table the runner may not LOCK (it needs UPDATE, DELETE or TRUNCATE there)
 * is left to its statement, under lock_timeout.
 */
async function execute(ctx: RunContext, step: SqlStep, locks: readonly ResolvedLock[], waitingFor: (l: ResolvedLock) => void = () => undefined): Promise<void> {
  if (step.transaction) {
    await withGuards(ctx.client, step.timeouts, ctx.guards, async () => {
      if (step.locks?.length) {
        let first = true;
        for (const l of locks) {
          if (l.oid === null || !l.lockable || l.mode === 'none') continue;
          waitingFor(l);
          await ctx.client.query(`LOCK TABLE ${qualified(l.table)} IN ${l.mode} MODE${first ? '' : ' NOWAIT'}`);
          first = false;
        }
        waitingFor(locks[0]!);
      }
      for (const sql of step.statements) await ctx.client.query(sql);
    });
    return;
  }
  // CONCURRENTLY cannot run in a transaction block, so the timeouts are set for the session and reset after.
  await ctx.client.query(timeoutSettings(step.timeouts, ctx.guards, 'SESSION'));
  const stopProgress = step.concurrentIndex ? watchIndexProgress(ctx, step.concurrentIndex) : () => undefined;
  try {
    if (step.concurrentIndex) await dropInvalidLeftover(ctx, step.concurrentIndex);
    for (const sql of step.statements) await ctx.client.query(sql);
  } finally {
    stopProgress();
    await ctx.client.query('RESET lock_timeout; RESET statement_timeout').catch(() => undefined);
  }
}
