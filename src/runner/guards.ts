import pRetry, { AbortError } from 'p-retry';
import { RETRY_FACTOR, RETRY_MAX_WAIT_MS, RETRY_MIN_WAIT_MS } from '../defaults.js';
import { backendPid, connect, sqlState, SqlState, withTransaction, type Client, type ConnectionOptions } from '../db/client.js';
import { blockersOf, lockHoldersOn } from '../db/locks.js';
import { describeBlocker, LockTimeoutError, PhaseFailedError, type Blocker } from '../errors.js';
import type { Logger } from '../log.js';
import type { Guards } from '../plan/types.js';
import { dropInvalidLeftover, watchIndexProgress } from './concurrent-index.js';
import type { SqlStep, TimeoutMode } from '../changes/steps.js';

/** What a step needs to run: the runner's connection, the guards, and the table for diagnostics. */
export interface RunContext {
  readonly client: Client;
  readonly connection: ConnectionOptions;
  readonly guards: Guards;
  readonly log: Logger;
  readonly table: { readonly oid: number; readonly display: string };
  /** Throws when the runner no longer holds the plan (its lease was lost); asked before each step and batch. */
  readonly stillHeld?: (() => void) | undefined;
  /** How often a CREATE INDEX CONCURRENTLY logs its progress (default `INDEX_PROGRESS_INTERVAL_MS`). */
  readonly progressEveryMs?: number | undefined;
  /** A second connection, opened on first need, that watches who blocks the runner. */
  monitor(): Promise<Client>;
  close(): Promise<void>;
}

/** Build a run context; `close()` ends the monitor connection if one was opened. */
export function runContext(fields: Omit<RunContext, 'monitor' | 'close'>): RunContext {
  let monitor: Promise<Client> | null = null;
  return {
    ...fields,
    monitor: () => (monitor ??= connect({ ...fields.connection, applicationName: 'pgshift monitor' })),
    close: async () => {
      if (monitor) await (await monitor).end().catch(() => undefined);
    },
  };
}

/**
 * The SET statements for the timeouts a step runs under, for the transaction
 * (`LOCAL`) or the session. One text, so one round trip (simple protocol,
 * numbers only): it is paid once per backfill batch.
 */
function timeoutSettings(mode: TimeoutMode, guards: Guards, scope: 'LOCAL' | 'SESSION'): string {
  const lock = mode === 'none' ? 0 : guards.lockTimeoutMs;
  const statement = mode === 'guarded' ? guards.statementTimeoutMs : 0;
  return `SET ${scope} lock_timeout = ${Math.round(lock)}; SET ${scope} statement_timeout = ${Math.round(statement)}`;
}

/** `SET LOCAL` the timeouts a step runs under. */
export async function setLocalTimeouts(client: Client, mode: TimeoutMode, guards: Guards): Promise<void> {
  await client.query(timeoutSettings(mode, guards, 'LOCAL'));
}

/**
 * Run `fn` in one transaction with the plan's lock_timeout and
 * statement_timeout set locally, so nothing outlives the transaction.
 */
export async function withGuards<T>(client: Client, mode: TimeoutMode, guards: Guards, fn: () => Promise<T>): Promise<T> {
  return withTransaction(client, async () => {
    await setLocalTimeouts(client, mode, guards);
    return fn();
  });
}

/** Is this error worth another attempt: a lock not granted in time, or a deadlock? */
export function isLockConflict(error: unknown): boolean {
  const code = sqlState(error);
  return code === SqlState.lockNotAvailable || code === SqlState.deadlockDetected;
}

/**
 * Run one SQL step under its guards. A lock timeout is retried with
 * exponential backoff and jitter; each failed attempt logs who blocked it.
 * When the attempts run out, a `LockTimeoutError` carries the blockers.
 */
export async function runSqlStep(ctx: RunContext, step: SqlStep): Promise<'ran' | 'skipped'> {
  ctx.stillHeld?.();
  let blockers: Blocker[] = [];
  let attempts = 0;
  try {
    return await pRetry(
      async () => {
        attempts++;
        if (step.skipIf) {
          const { rows } = await ctx.client.query<{ done: boolean }>(step.skipIf);
          if (rows[0]?.done) return 'skipped' as const;
        }
        const watch = step.lock === 'none' || step.timeouts === 'none' ? noWatch : watchBlockers(ctx);
        try {
          await execute(ctx, step);
          return 'ran' as const;
        } catch (error) {
          if (!isLockConflict(error)) throw new AbortError(error as Error);
          blockers = await watch.result();
          if (!blockers.length) blockers = await lockHoldersOn(ctx.client, ctx.table.oid, backendPid(ctx.client)).catch(() => []);
          throw error;
        } finally {
          watch.stop();
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
            `lock not granted within ${ctx.guards.lockTimeoutMs} ms on ${ctx.table.display}` +
              (blockers.length ? `; blocked by ${blockers.map(describeBlocker).join('; ')}` : ''),
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

/** A database error during a step, as a PhaseFailedError keeping code, detail and hint. */
export function stepFailure(what: string, cause: unknown): PhaseFailedError {
  if (cause instanceof PhaseFailedError) return cause;
  const pg = cause as { message?: string; code?: string; detail?: string; hint?: string };
  const extra = [pg.code && `SQLSTATE ${pg.code}`, pg.detail && `detail: ${pg.detail}`, pg.hint && `hint: ${pg.hint}`].filter(Boolean);
  return new PhaseFailedError(`${what}: ${pg.message ?? String(cause)}${extra.length ? ` (${extra.join('; ')})` : ''}`, { cause });
}

async function execute(ctx: RunContext, step: SqlStep): Promise<void> {
  if (step.transaction) {
    await withGuards(ctx.client, step.timeouts, ctx.guards, async () => {
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

/** What `watchBlockers` found, once the statement it watched has ended. */
export interface BlockerWatch {
  result(): Promise<Blocker[]>;
  stop(): void;
}

const noWatch: BlockerWatch = { result: async () => [], stop: () => undefined };

/**
 * While a statement of the runner waits for a lock, ask `pg_blocking_pids`
 * from a second connection who is in the way. The question is asked once,
 * halfway through the lock timeout, when the statement is certainly waiting
 * if it is going to. Used for DDL steps and for backfill batches alike.
 */
export function watchBlockers(ctx: RunContext): BlockerWatch {
  let found: Promise<Blocker[]> = Promise.resolve([]);
  const timer = setTimeout(
    () => {
      found = ctx
        .monitor()
        .then((m) => blockersOf(m, backendPid(ctx.client)))
        .catch(() => []);
    },
    Math.max(20, ctx.guards.lockTimeoutMs / 2),
  );
  return { result: () => found, stop: () => clearTimeout(timer) };
}
