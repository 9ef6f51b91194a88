import type { Client } from '../db/client.js';
import { literal, qualified, type QualifiedName } from '../db/ident.js';
import { MAX_DEFAULT_WORKERS, MIN_ROWS_PER_DEFAULT_WORKER } from '../defaults.js';

/** What the default `backfill.workers` is decided from, read from the server when a backfill starts. */
export interface ServerFacts {
  /**
   * `max_parallel_workers`: how many processes the server lets parallel
   * queries use at once. PostgreSQL does not say how many cores it runs on;
   * this is the setting its operators size to them (tuning guides set it to
   * the core count), and an operator who turned parallel queries off (0)
   * wants no more than one backend per statement.
   */
  readonly maxParallelWorkers: number;
  /** Client sessions running a statement right now, pgshift's own left out (those the runner may see). */
  readonly activeSessions: number;
  /** Connections a non-superuser may still open: `max_connections` less the reserved ones and those open. */
  readonly freeConnections: number;
  /** The table's rows as the statistics have them (its leaf partitions' sum; 0 when never analyzed). */
  readonly rows: number;
}

/** The default worker count and why, for the log. */
export interface DefaultWorkers {
  readonly workers: number;
  readonly why: string;
}

/** Connections a backfill opens besides its workers' (monitor, lease, the final check's and ANALYZE's). */
const SPARE_CONNECTIONS = 4;

/**
 * `backfill.workers` when the plan does not set it. Each worker is one
 * backend busy writing (and a second one finding batch ends and reading
 * batches back, mostly idle), so the backfill takes at most a quarter of
 * the server's parallel workers (its proxy for cores, see
 * {@link ServerFacts}), half of those not busy with the application's
 * statements right now, two connections per worker among those left, one
 * worker per `MIN_ROWS_PER_DEFAULT_WORKER` rows (a smaller walk is short,
 * and the split's sample and the connections cost more than they save),
 * and never more than `MAX_DEFAULT_WORKERS`; at least one. With
 * PostgreSQL's default `max_parallel_workers` (8) on an idle server that is
 * 2, which in bench/backfill took the phase under one UPDATE's time where
 * one worker was over it (docs/benchmarks.md). Throttles apply to all workers
 * together, and each worker's batches stay as short as one runner's.
 */
export function defaultWorkers(facts: ServerFacts): DefaultWorkers {
  const share = Math.floor(facts.maxParallelWorkers / 4);
  const idle = Math.floor((facts.maxParallelWorkers - facts.activeSessions) / 2);
  const connections = Math.floor((facts.freeConnections - SPARE_CONNECTIONS) / 2);
  const size = Math.floor(facts.rows / MIN_ROWS_PER_DEFAULT_WORKER);
  const workers = Math.max(1, Math.min(MAX_DEFAULT_WORKERS, share, idle, connections, size));
  const why =
    `max_parallel_workers ${facts.maxParallelWorkers} (a quarter: ${share}), ${facts.activeSessions} other session${facts.activeSessions === 1 ? '' : 's'} active ` +
    `(half the rest: ${Math.max(0, idle)}), ${facts.freeConnections} free connections (${Math.max(0, connections)} workers' worth), ` +
    `~${Math.round(facts.rows)} rows (${size} workers' worth), at most ${MAX_DEFAULT_WORKERS}`;
  return { workers, why };
}

/** Read {@link ServerFacts} for `table` (settings, pg_stat_activity and pg_class; nothing locked). */
export async function readServerFacts(client: Client, table: QualifiedName): Promise<ServerFacts> {
  // oid against oid (see trigger-bypass.ts): no look-alike operator can match better than pg_catalog's.
  const rel = `${literal(qualified(table))}::pg_catalog.regclass`;
  const oid = `${rel}::pg_catalog.oid`;
  const { rows } = await client.query<{ mpw: number; active: number; free: number; n: number }>(
    `SELECT pg_catalog.current_setting('max_parallel_workers')::int AS mpw,
            (SELECT count(*)::int FROM pg_catalog.pg_stat_activity a
              WHERE a.backend_type = 'client backend' AND a.state = 'active' AND a.pid <> pg_catalog.pg_backend_pid()
                AND a.application_name NOT LIKE 'pgshift %') AS active,
            (pg_catalog.current_setting('max_connections')::int
             - pg_catalog.current_setting('superuser_reserved_connections')::int
             - coalesce((SELECT setting::int FROM pg_catalog.pg_settings WHERE name = 'reserved_connections'), 0)
             - (SELECT count(*)::int FROM pg_catalog.pg_stat_activity a WHERE a.backend_type = 'client backend')) AS free,
            (SELECT coalesce(sum(GREATEST(c.reltuples, 0)), 0)::float8 FROM pg_catalog.pg_class c
              WHERE c.relkind = 'r' AND (c.oid = ${oid} OR c.oid IN (SELECT p.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree(${rel}) p))) AS n`,
  );
  const r = rows[0]!;
  return { maxParallelWorkers: r.mpw, activeSessions: r.active, freeConnections: r.free, rows: r.n };
}
