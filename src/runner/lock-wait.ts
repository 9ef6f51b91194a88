import { setTimeout as sleep } from 'node:timers/promises';
import { LOCK_WAIT_LOG_EVERY_MS, LOCK_WAIT_POLL_MS, YOUNG_TRANSACTION_MS } from '../defaults.js';
import { backendPid } from '../db/client.js';
import { display, qualified } from '../db/ident.js';
import { conflictingSessions, type WatchedTable } from '../db/locks.js';
import { describeBlocker, type Blocker } from '../errors.js';
import type { RunContext } from '../guard/context.js';
import { conflictingLockNames, type SqlStep, type TableLock } from '../changes/steps.js';

/** A table a step locks, resolved to its oid (null when it does not exist). */
export interface ResolvedLock extends TableLock {
  readonly oid: number | null;
  readonly display: string;
  /** May the runner take this lock with LOCK TABLE (it needs UPDATE, DELETE or TRUNCATE on the table)? */
  readonly lockable: boolean;
}

/**
 * The tables a step locks: its declared `locks`, else the plan's table in
 * the step's mode. Resolved at each attempt, since a step may drop a table's
 * last reference to another.
 */
export async function resolveLocks(ctx: RunContext, step: SqlStep): Promise<ResolvedLock[]> {
  if (!step.locks?.length)
    return [{ table: { schema: '', name: ctx.table.display }, mode: step.lock, oid: ctx.table.oid, display: ctx.table.display, lockable: true }];
  const { rows } = await ctx.client.query<{ oid: number | null; lockable: boolean }>(
    `SELECT r::oid::int8::float8 AS oid,
            r IS NOT NULL AND (has_table_privilege(r, 'UPDATE') OR has_table_privilege(r, 'DELETE') OR has_table_privilege(r, 'TRUNCATE')) AS lockable
       FROM unnest($1::text[]) WITH ORDINALITY AS n(name, o), LATERAL to_regclass(n.name) AS r ORDER BY n.o`,
    [step.locks.map((l) => qualified(l.table))],
  );
  return step.locks.map((l, i) => ({ ...l, oid: rows[i]!.oid, lockable: rows[i]!.lockable, display: display(l.table) }));
}

/** The tables to watch for a step, with what would conflict there. */
export function watched(locks: readonly ResolvedLock[]): WatchedTable[] {
  return locks.filter((l) => l.oid !== null && l.mode !== 'none').map((l) => ({ oid: l.oid!, conflicting: conflictingLockNames(l.mode) }));
}

/** How a wait outside the lock queue ended. */
export type WaitOutcome = { readonly clear: true } | { readonly clear: false; readonly blockers: Blocker[] };

/**
 * Wait, without queuing for any lock, until no session holds or awaits a
 * lock conflicting with the step's on any of its tables, or until
 * `deadline`. A statement that asks for a lock behind a holder joins
 * PostgreSQL's lock queue, and every later query on the table, even a plain
 * SELECT, queues behind it; watching `pg_locks` from the monitor connection
 * queues behind nothing, so the application never waits for pgshift while
 * pgshift waits. Says once who blocks it, then every
 * `LOCK_WAIT_LOG_EVERY_MS`, with how long it will still wait.
 */
export async function waitOutsideQueue(
  ctx: RunContext,
  step: SqlStep,
  tables: readonly WatchedTable[],
  deadline: number,
  waitedSince: number,
): Promise<WaitOutcome> {
  if (!tables.length) return { clear: true };
  const monitor = await ctx.monitor();
  const pid = backendPid(ctx.client);
  const youngMs = Math.min(YOUNG_TRANSACTION_MS, ctx.guards.lockTimeoutMs / 2);
  let lastLog = 0;
  let before = new Set<number>();
  for (;;) {
    const blockers = await conflictingSessions(monitor, tables, pid, youngMs);
    if (!blockers.length) return { clear: true };
    const now = Date.now();
    if (now >= deadline) {
      // Name the sessions that were in the way at the last look too, not one passing by.
      const lasting = blockers.filter((b) => before.has(b.pid));
      return { clear: false, blockers: lasting.length ? lasting : blockers };
    }
    before = new Set(blockers.map((b) => b.pid));
    if (lastLog === 0 || now - lastLog >= LOCK_WAIT_LOG_EVERY_MS) {
      lastLog = now;
      ctx.log.warn(
        { step: step.description, blockers, waitedMs: now - waitedSince, leftMs: deadline - now },
        `waiting outside the lock queue for "${step.description}" on ${ctx.table.display} ` +
          `(${((now - waitedSince) / 1000).toFixed(1)} s so far, up to ${((deadline - now) / 1000).toFixed(1)} s more): ` +
          blockers.map(describeBlocker).join('; '),
      );
    }
    ctx.stillHeld?.();
    await sleep(Math.min(LOCK_WAIT_POLL_MS, Math.max(1, deadline - now)));
  }
}
