/**
 * Every default pgshift uses, in one place. The options table of
 * docs/cli.md and the plan format of docs/plans.md are written from this
 * file; change them together.
 */

/**
 * `guards.lock_timeout`: PostgreSQL's lock_timeout for each attempt at a
 * statement, so the longest an application query can queue behind one. An
 * attempt is made only when no session holds or awaits a conflicting lock
 * (see `runner/lock-wait.ts`), so it is normally granted at once; the
 * timeout only bounds a race with a transaction that started in between.
 * Measured in bench/lock-wait (docs/locks.md).
 */
export const DEFAULT_LOCK_TIMEOUT_MS = 50;
/**
 * `guards.max_wait`: how long one step may wait in all for its locks before
 * giving up with exit 3. The old budget was lock_timeout × (retries + 1)
 * plus backoff, about 2.5 minutes with the old defaults (2 s, 8); waiting no
 * longer costs the application anything, so it is longer.
 */
export const DEFAULT_MAX_WAIT_MS = 300_000;
/** While a step waits for its locks, who blocks it is logged this often (and once at the start). */
export const LOCK_WAIT_LOG_EVERY_MS = 5_000;
/** How often the blockers of a waiting step are looked for again in pg_locks. */
export const LOCK_WAIT_POLL_MS = 20;
/**
 * How long the ANALYZE after a backfill (and before one, on a table never
 * analyzed) may wait for its SHARE UPDATE EXCLUSIVE lock. That lock
 * conflicts with no reader or writer (only VACUUM, ANALYZE, CREATE INDEX
 * CONCURRENTLY and DDL), so queueing for it delays no application query,
 * and `lock_timeout` (50 ms) is the wrong bound: an autovacuum of the table,
 * likely right after millions of rows were rewritten, holds that lock and
 * is cancelled by the deadlock detector only after `deadlock_timeout` (1 s
 * by default). The run where lock_timeout skipped it: docs/benchmarks.md.
 */
export const ANALYZE_LOCK_WAIT_MS = 10_000;

/**
 * How long the runner waits for a connection it can do without (the
 * backfill's batch-end lookups and read-back, the final check's extra
 * readers, the ANALYZE beside it) to answer its first query: a fresh
 * connection answers in milliseconds, while behind a pooler whose pool is
 * full it waits in the pooler's queue (PgBouncer: `query_wait_timeout`, 120 s
 * by default) and then fails. Past this, the work is done without it.
 */
export const SPARE_CONNECTION_WAIT_MS = 2_000;
/** `guards.statement_timeout`: how long one statement (DDL or backfill batch) may run. */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
/** `guards.retries`: attempts after the first when a backfill batch finds rows locked. */
export const DEFAULT_RETRIES = 8;
/**
 * `guards.old_code_quiet`: how long no old-code activity (a client writing
 * the old columns, or a statement naming them) must have been seen before
 * `stop-write` or `contract` may run. `PGSHIFT_OLD_CODE_QUIET` (a duration)
 * replaces this default for plans that do not set it.
 */
export const DEFAULT_OLD_CODE_QUIET_MS = 15 * 60_000;

/**
 * `contract.keep`: how long contract keeps the old columns archived (renamed
 * aside) before the first `apply` after it drops them. A week covers a
 * release found wrong after contract; `0` drops them at contract.
 */
export const DEFAULT_CONTRACT_KEEP_MS = 7 * 24 * 60 * 60_000;
/** At most this many old-code sessions are named. */
export const OLD_CODE_WRITERS_SHOWN = 5;
/** At most this many old-code statements from pg_stat_statements are named. */
export const OLD_CODE_STATEMENTS_SHOWN = 5;
/** At most this many characters of an old-code statement's text are stored (`old_code_statements.query`). */
export const OLD_CODE_STATEMENT_CHARS = 500;

/** First wait between lock attempts; p-retry multiplies it by a random 1–2 (jitter). */
export const RETRY_MIN_WAIT_MS = 500;
/** Each wait doubles the last one … */
export const RETRY_FACTOR = 2;
/** … up to this cap. */
export const RETRY_MAX_WAIT_MS = 10_000;

/** `backfill.batch_size`: rows per batch transaction (the starting size when adaptive). */
export const DEFAULT_BATCH_SIZE = 5_000;
/**
 * `backfill.pause`: sleep between two batches. None by default: batches are
 * short (`target_batch_ms`) and commit without waiting for their WAL flush,
 * and `max_replica_lag` throttles for replicas. In bench/backfill a pause
 * cost time and did not lower the application's p99 (docs/benchmarks.md,
 * how the defaults were chosen).
 */
export const DEFAULT_PAUSE_MS = 0;
/**
 * `backfill.target_batch_ms`: the duration each batch aims at; the batch size
 * adapts to it. An application write to a row of the batch in flight waits
 * for its commit, so the batch's duration is what such a write can wait, and
 * its share of the table is how many writes do: short batches keep the
 * workload's p99 near its baseline (docs/benchmarks.md, how the defaults
 * were chosen).
 */
export const DEFAULT_TARGET_BATCH_MS = 50;
/**
 * `backfill.workers` has no fixed default: when a plan does not set it, the
 * backfill decides at its start from the server (`defaultWorkers` in
 * backfill/default-workers.ts: a quarter of `max_parallel_workers`, half of
 * those idle, two connections per worker), at most this many. A second
 * worker is what took the phase under one UPDATE's time in bench/backfill
 * (docs/benchmarks.md); beyond a few workers one walk writes faster than
 * most replicas replay, so more stays the operator's call.
 */
export const MAX_DEFAULT_WORKERS = 4;
/** Without `backfill.workers`, one worker per this many rows at most (statistics' estimate): a smaller walk is short enough alone. */
export const MIN_ROWS_PER_DEFAULT_WORKER = 100_000;
/** `backfill.max_replica_lag`: wait between batches while a replica lags more than this. */
export const DEFAULT_MAX_REPLICA_LAG_MS = 10_000;
/**
 * `backfill.abandoned_slot_after`: a logical slot that is inactive (no
 * consumer attached) and has not moved for this long, as the runner sees it,
 * is named in a warning and no longer waited for by `max_slot_lag`. Long
 * enough for a CDC connector to restart or a SQL consumer to poll again;
 * short enough that a slot someone forgot does not hold the backfill for
 * ever (0 waits for every slot, however long it is stuck).
 */
export const DEFAULT_ABANDONED_SLOT_AFTER_MS = 600_000;
/** How often, at most, the slot, session and `throttle_query` throttles are asked before a batch. */
export const THROTTLE_RECHECK_MS = 1_000;
/** `statement_timeout` of one `backfill.throttle_query` run: it runs between every second's batches, so it must be quick. */
export const THROTTLE_QUERY_TIMEOUT_MS = 5_000;
/** `max_wal_rate` lets the walk run ahead of its average by at most this much time's worth of WAL (after a wait, say). */
export const WAL_RATE_BURST_MS = 1_000;
/** The adaptive batch size stays within these bounds. */
export const MIN_BATCH_ROWS = 50;
export const MAX_BATCH_ROWS = 200_000;
/** How often the replica lag is asked again while waiting for replicas to catch up. */
export const REPLICA_LAG_POLL_MS = 1_000;

/** `--dir`: where plan files are read from. */
export const DEFAULT_PLAN_DIR = 'plans';
/** `--schema`: the schema holding pgshift's state tables and functions. */
export const DEFAULT_STATE_SCHEMA = 'pgshift';

/** How often a running CREATE INDEX CONCURRENTLY logs its progress (pg_stat_progress_create_index). */
export const INDEX_PROGRESS_INTERVAL_MS = 10_000;

/** Longest query text kept when reporting who blocks a lock. */
export const BLOCKER_QUERY_MAX_CHARS = 120;

/** `--concurrency`: how many target databases a fleet command works on at once. */
export const DEFAULT_FLEET_CONCURRENCY = 4;

/** How many real rows `lint` reads to check that `reverse` undoes `using`. */
export const INVERSE_SAMPLE_ROWS = 1_000;
/** `rehearse`: lines of a failing command's output kept in the report. */
export const REHEARSE_TAIL_LINES = 20;
/**
 * `PGSHIFT_LEASE`: how long a runner's plan lease lasts without a heartbeat.
 * A runner renews it every third of this; a runner killed so that its session
 * lingers (an orphaned statement still running, a pooler that keeps the
 * server connection without resetting it) blocks the plan for at most this
 * long. A runner whose session ended is replaced at once.
 */
export const DEFAULT_LEASE_MS = 60_000;
/** A lease is renewed this many times per lease period, so a missed heartbeat or two are harmless. */
export const LEASE_RENEWALS_PER_PERIOD = 3;
/** How many times, at connect, the runner checks that its connections keep their session. */
export const SESSION_CHECKS = 3;

/**
 * A conflicting lock held by a transaction younger than this (or than half
 * the attempt's lock_timeout, if less) does not hold back an attempt: see
 * `conflictingSessions`.
 */
export const YOUNG_TRANSACTION_MS = 20;

/** `hooks.progress_every`: a `backfill_progress` hook runs each time the backfill crosses another multiple of this many percent. */
export const DEFAULT_HOOK_PROGRESS_EVERY = 10;
/** `hooks.timeout`: a hook still running after this long is killed, and its failure logged (it never fails the migration). */
export const DEFAULT_HOOK_TIMEOUT_MS = 10_000;
