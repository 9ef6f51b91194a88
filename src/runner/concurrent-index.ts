import { backendPid } from '../db/client.js';
import { display, qualified, type QualifiedName } from '../db/ident.js';
import { BLOCKER_QUERY_MAX_CHARS, INDEX_PROGRESS_INTERVAL_MS } from '../defaults.js';
import type { RunContext } from '../guard/context.js';

/** One row of `pg_stat_progress_create_index` for the runner's build, with who it waits for. */
export interface IndexBuildProgress {
  readonly phase: string;
  readonly blocksDone: number;
  readonly blocksTotal: number;
  readonly tuplesDone: number;
  readonly tuplesTotal: number;
  readonly lockersDone: number;
  readonly lockersTotal: number;
  readonly currentLockerPid: number | null;
  readonly currentLockerQuery: string | null;
}

/**
 * Drop an INVALID index left by an earlier, interrupted build of the same
 * name (a killed runner, a cancelled statement, a unique violation): `CREATE
 * INDEX CONCURRENTLY IF NOT EXISTS` would otherwise keep the broken index and
 * report success. `DROP INDEX CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE on
 * the table, like the build itself, so application reads and writes go on;
 * it cannot run in a transaction block, which is why the caller runs it on
 * the bare session. True when something was dropped.
 */
export async function dropInvalidLeftover(ctx: RunContext, index: QualifiedName): Promise<boolean> {
  const { rows } = await ctx.client.query<{ invalid: boolean }>(`SELECT NOT i.indisvalid AS invalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)`, [
    qualified(index),
  ]);
  if (!rows[0]?.invalid) return false;
  ctx.log.warn({ index: display(index) }, `dropping the INVALID index ${display(index)} left by an interrupted build, then building it again`);
  await ctx.client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualified(index)}`);
  return true;
}

/**
 * While the runner builds an index CONCURRENTLY, read its progress from a
 * second connection every `progressEveryMs` and log it: a build that waits
 * for old transactions (it must, by design) says which one, so an operator
 * can tell a slow build from a stuck one. Returns a function that stops it.
 */
export function watchIndexProgress(ctx: RunContext, index: QualifiedName): () => void {
  const pid = backendPid(ctx.client);
  const timer = setInterval(() => {
    void readIndexProgress(ctx, pid)
      .then((p) => {
        if (p) ctx.log.info({ index: display(index), progress: p }, `building index ${display(index)}: ${describeProgress(p)}`);
      })
      .catch(() => undefined);
  }, ctx.progressEveryMs ?? INDEX_PROGRESS_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** The progress row of the index build running in backend `pid`, or null. */
export async function readIndexProgress(ctx: RunContext, pid: number): Promise<IndexBuildProgress | null> {
  const monitor = await ctx.monitor();
  const { rows } = await monitor.query<IndexBuildProgress>(
    `SELECT p.phase, p.blocks_done::float8 AS "blocksDone", p.blocks_total::float8 AS "blocksTotal",
            p.tuples_done::float8 AS "tuplesDone", p.tuples_total::float8 AS "tuplesTotal",
            p.lockers_done::float8 AS "lockersDone", p.lockers_total::float8 AS "lockersTotal",
            nullif(p.current_locker_pid, 0)::int AS "currentLockerPid",
            (SELECT left(a.query, ${BLOCKER_QUERY_MAX_CHARS}) FROM pg_stat_activity a WHERE a.pid = p.current_locker_pid) AS "currentLockerQuery"
       FROM pg_stat_progress_create_index p WHERE p.pid = $1`,
    [pid],
  );
  return rows[0] ?? null;
}

/** `scanning table: 40% of blocks` / `waiting for old snapshots: 1 of 2 transactions, now pid 42 (…)`. */
export function describeProgress(p: IndexBuildProgress): string {
  const parts = [p.phase];
  if (p.blocksTotal > 0) parts.push(`${Math.floor((100 * p.blocksDone) / p.blocksTotal)}% of ${p.blocksTotal} blocks`);
  if (p.tuplesTotal > 0) parts.push(`${p.tuplesDone} of ${p.tuplesTotal} tuples`);
  if (p.lockersTotal > 0) {
    parts.push(
      `${p.lockersDone} of ${p.lockersTotal} older transaction(s) done` +
        (p.currentLockerPid ? `, waiting for pid ${p.currentLockerPid}${p.currentLockerQuery ? ` (${p.currentLockerQuery})` : ''}` : ''),
    );
  }
  return parts.join(': ');
}
