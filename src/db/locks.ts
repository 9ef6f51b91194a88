import { BLOCKER_QUERY_MAX_CHARS } from '../defaults.js';
import type { Blocker } from '../errors.js';
import type { Client } from './client.js';

const BLOCKER_COLUMNS = `a.pid, a.state, a.application_name AS "applicationName",
  extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::float8 AS seconds,
  left(a.query, ${BLOCKER_QUERY_MAX_CHARS}) AS query`;

/**
 * Sessions blocking `pid` right now (`pg_blocking_pids`), with what they are
 * doing. pg_blocking_pids briefly takes every lock-manager partition lock
 * and is volatile, so it is called once (not once per pg_stat_activity row)
 * and only when `pid` is waiting for a lock at all: the backfill asks this
 * during most batches, which are usually just running.
 */
export async function blockersOf(monitor: Client, pid: number): Promise<Blocker[]> {
  const { rows } = await monitor.query<Blocker>(
    `WITH blocking AS MATERIALIZED (
       SELECT unnest(pg_blocking_pids($1)) AS pid
        WHERE EXISTS (SELECT 1 FROM pg_stat_activity w WHERE w.pid = $1 AND w.wait_event_type = 'Lock'))
     SELECT ${BLOCKER_COLUMNS}, (SELECT string_agg(DISTINCT l.mode, ', ') FROM pg_locks l
             WHERE l.pid = a.pid AND l.granted AND l.locktype = 'relation') AS mode
       FROM pg_stat_activity a WHERE a.pid IN (SELECT pid FROM blocking) ORDER BY a.pid`,
    [pid],
  );
  return rows;
}

/**
 * Sessions other than `pid` holding a lock on the table: the likely blockers
 * when the moment of waiting was not caught.
 */
export async function lockHoldersOn(client: Client, tableOid: number, pid: number): Promise<Blocker[]> {
  const { rows } = await client.query<Blocker>(
    `SELECT ${BLOCKER_COLUMNS}, string_agg(l.mode, ', ') AS mode
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'relation' AND l.relation = $1 AND l.granted AND l.pid <> $2 AND a.state IS DISTINCT FROM 'idle'
      GROUP BY a.pid, a.state, a.application_name, a.xact_start, a.query_start, a.query
      ORDER BY a.pid`,
    [tableOid, pid],
  );
  return rows;
}

/** A table to watch and the `pg_locks.mode` names that would conflict with the lock pgshift needs on it. */
export interface WatchedTable {
  readonly oid: number;
  readonly conflicting: readonly string[];
}

/**
 * Sessions other than `pid` in the way of a lock pgshift needs on one of
 * `tables`: queued for a conflicting lock there, or holding one in a
 * transaction that has lasted at least `youngMs`. While there is one, a
 * pgshift statement asking for its lock would queue, and every application
 * query arriving after it would queue behind it. A younger holder is let be:
 * on a busy table some short statement nearly always holds a lock, it will
 * most likely be done within the attempt's lock_timeout, and if not, the
 * attempt gives up after that. Read from `pg_locks` (fast-path locks
 * included) without queuing for anything. A prepared transaction holding a
 * lock has no session: it is reported as pid 0. `mode` says what each holds
 * or awaits, on which table.
 *
 * `pg_locks` and `pg_stat_activity` are two reads, not one instant: a lock
 * of a transaction that ended between them shows beside its session, now
 * idle (and a lock taken between them beside a session still shown idle).
 * An idle session holds no table lock, and in the second case its
 * transaction is younger than the read: either way it is not counted, or
 * every short query of a busy application would be named as a blocker.
 */
export async function conflictingSessions(monitor: Client, tables: readonly WatchedTable[], pid: number, youngMs = 0): Promise<Blocker[]> {
  const { rows } = await monitor.query<Blocker>(
    `WITH watched AS (SELECT * FROM unnest($1::oid[], $2::text[]) AS w(rel, modes)),
     held AS (
       SELECT coalesce(l.pid, 0) AS pid,
              pg_catalog.string_agg(DISTINCT pg_catalog.concat(l.mode, CASE WHEN l.granted THEN '' ELSE ' (queued)' END, ' on ', n.nspname, '.', c.relname), ', ') AS mode
         FROM pg_locks l JOIN watched w ON l.relation = w.rel
         JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.mode = ANY (string_to_array(w.modes, ',')) AND l.pid IS DISTINCT FROM $3
          -- xact_start is NULL for another role's session unless the runner may read all stats: then it counts.
          AND (NOT l.granted OR l.pid IS NULL OR a.xact_start IS NULL OR clock_timestamp() - a.xact_start >= $4 * interval '1 millisecond')
          -- A session shown idle, outside any transaction, holds no table lock (see above): it is not in the way.
          AND (l.pid IS NULL OR a.state IS DISTINCT FROM 'idle')
        GROUP BY 1)
     SELECT h.pid, coalesce(a.state, CASE WHEN h.pid = 0 THEN 'prepared transaction' END) AS state,
            a.application_name AS "applicationName",
            greatest(0, extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.query_start)))::float8 AS seconds,
            left(a.query, ${BLOCKER_QUERY_MAX_CHARS}) AS query, h.mode
       FROM held h LEFT JOIN pg_stat_activity a ON a.pid = h.pid
      ORDER BY h.pid`,
    [tables.map((t) => t.oid), tables.map((t) => t.conflicting.join(',')), pid, youngMs],
  );
  return rows;
}
