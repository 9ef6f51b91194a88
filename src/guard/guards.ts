import { backendPid, withTransaction, type Client } from '../db/client.js';
import { blockersOf } from '../db/locks.js';
import { PhaseFailedError, type Blocker } from '../errors.js';
import type { TimeoutMode } from '../changes/steps.js';
import type { Guards } from '../plan/types.js';
import type { RunContext } from './context.js';

/*
 * The guards every statement of a runner runs under, shared by the phase
 * executor (runner/) and the backfill it calls: local timeouts, a failure
 * kept with its code, detail and hint, and a watch for who blocks.
 */

/**
 * The SET statements for the timeouts a step runs under, for the transaction
 * (`LOCAL`) or the session. One text, so one round trip (simple protocol,
 * numbers only): it is paid once per backfill batch.
 */
export function timeoutSettings(mode: TimeoutMode, guards: Guards, scope: 'LOCAL' | 'SESSION'): string {
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

/** A database error during a step, as a PhaseFailedError keeping code, detail and hint. */
export function stepFailure(what: string, cause: unknown): PhaseFailedError {
  if (cause instanceof PhaseFailedError) return cause;
  const pg = cause as { message?: string; code?: string; detail?: string; hint?: string };
  const extra = [pg.code && `SQLSTATE ${pg.code}`, pg.detail && `detail: ${pg.detail}`, pg.hint && `hint: ${pg.hint}`].filter(Boolean);
  return new PhaseFailedError(`${what}: ${pg.message ?? String(cause)}${extra.length ? ` (${extra.join('; ')})` : ''}`, { cause });
}

/** What `watchBlockers` found, once the statement it watched has ended. */
export interface BlockerWatch {
  result(): Promise<Blocker[]>;
  stop(): void;
}

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
