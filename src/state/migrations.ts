import { ident, literal } from '../db/ident.js';

/**
 * One step of the state schema's history. Steps run in order, each once, in
 * the same transaction as the version bump that records them, so a step is
 * either wholly applied and recorded or not at all. Their statements are
 * also written to be harmless if run again (IF [NOT] EXISTS, OR REPLACE).
 *
 * A step's SQL is frozen once released: an installation made by that release
 * has exactly it. Change the state schema by adding a step, never by editing
 * one.
 */
export interface StateMigration {
  readonly version: number;
  readonly description: string;
  statements(schema: string): readonly string[];
}

const PHASES_V1 = `'expand', 'dual-write', 'backfill', 'switch-read', 'stop-write', 'contract'`;

/** Version 1: what pgshift 0.1.0 created, before the schema recorded its version. */
function version1(schema: string): string[] {
  const s = ident(schema);
  const phase = (column: string): string => `text CHECK (${column} IN (${PHASES_V1}))`;
  return [
    `CREATE TABLE IF NOT EXISTS ${s}.plans (
      name text PRIMARY KEY CHECK (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
      table_name text NOT NULL,
      kind text NOT NULL CHECK (kind IN ('rename', 'split', 'merge', 'retype')),
      checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
      phase ${phase('phase')},
      status text NOT NULL CHECK (status IN ('in_progress', 'failed', 'complete', 'rolled_back')),
      unfinished_phase ${phase('unfinished_phase')},
      unfinished_action text CHECK (unfinished_action IN ('apply', 'rollback')),
      last_error text,
      facts jsonb NOT NULL,
      started_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CHECK ((status = 'complete') = (phase IS NOT DISTINCT FROM 'contract')),
      CHECK (status <> 'rolled_back' OR phase IS NULL),
      CHECK ((unfinished_phase IS NULL) = (unfinished_action IS NULL)),
      CHECK (status <> 'failed' OR (unfinished_phase IS NOT NULL AND last_error IS NOT NULL)),
      CHECK (status IN ('in_progress', 'failed') OR unfinished_phase IS NULL)
    )`,
    `CREATE UNIQUE INDEX IF NOT EXISTS plans_one_in_flight_per_table ON ${s}.plans (table_name) WHERE status IN ('in_progress', 'failed')`,
    `CREATE TABLE IF NOT EXISTS ${s}.events (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      plan text NOT NULL REFERENCES ${s}.plans (name) ON DELETE CASCADE,
      phase ${phase('phase')} NOT NULL,
      action text NOT NULL CHECK (action IN ('apply', 'rollback')),
      outcome text NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
      error text,
      started_at timestamptz NOT NULL,
      finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      actor text NOT NULL,
      version text NOT NULL,
      CHECK ((outcome = 'failed') = (error IS NOT NULL)),
      CHECK (finished_at >= started_at)
    )`,
    `CREATE INDEX IF NOT EXISTS events_plan ON ${s}.events (plan, id)`,
    `CREATE TABLE IF NOT EXISTS ${s}.backfill (
      plan text PRIMARY KEY REFERENCES ${s}.plans (name) ON DELETE CASCADE,
      upper_key jsonb,
      last_key jsonb,
      rows_done bigint NOT NULL DEFAULT 0 CHECK (rows_done >= 0),
      rows_estimated bigint NOT NULL DEFAULT 0 CHECK (rows_estimated >= 0),
      batch_size integer NOT NULL CHECK (batch_size > 0),
      started_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      finished_at timestamptz
    )`,
    `CREATE OR REPLACE FUNCTION ${s}.phase(plan_name text) RETURNS text
      LANGUAGE sql STABLE SET search_path = pg_catalog
      AS $$ SELECT phase FROM ${s}.plans WHERE name = plan_name $$`,
    `COMMENT ON FUNCTION ${s}.phase(text) IS 'The last phase pgshift applied for a plan (NULL when none): applications switch their reads on it.'`,
  ];
}

/**
 * Version 2: the schema records its own version, events record whether
 * `--force` was given, `phase()` answers every role (SECURITY DEFINER, USAGE
 * on pgshift's own schema for PUBLIC), plans are locked by lease rows, and
 * `plans.kind` is no
 * longer a list fixed at install time (an installation kept the list of the
 * release that created it, so a newer pgshift could not record a new change
 * kind); the kind is checked by the plan loader, the table keeps its shape.
 */
function version2(schema: string): string[] {
  const s = ident(schema);
  return [
    `CREATE TABLE IF NOT EXISTS ${s}.schema_version (
      singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
      version integer NOT NULL CHECK (version > 0),
      written_by text NOT NULL,
      upgraded_at timestamptz NOT NULL DEFAULT now()
    )`,
    `ALTER TABLE ${s}.plans DROP CONSTRAINT IF EXISTS plans_kind_check`,
    `ALTER TABLE ${s}.plans DROP CONSTRAINT IF EXISTS plans_kind_format`,
    `ALTER TABLE ${s}.plans ADD CONSTRAINT plans_kind_format CHECK (kind ~ '^[a-z][a-z0-9-]*$')`,
    // `--force` overrides a refusal; the history says when it did.
    `ALTER TABLE ${s}.events ADD COLUMN IF NOT EXISTS forced boolean NOT NULL DEFAULT false`,
    // Every application role reads the flag, and none may read the state
    // tables: SECURITY DEFINER runs the one query as the schema's owner, and
    // the fixed search_path (with the table qualified) leaves a caller nothing
    // to substitute. EXECUTE is granted explicitly, as default privileges may
    // have revoked it from PUBLIC.
    `CREATE OR REPLACE FUNCTION ${s}.phase(plan_name text) RETURNS text
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
      AS $$ SELECT phase FROM ${s}.plans WHERE name = plan_name $$`,
    `GRANT EXECUTE ON FUNCTION ${s}.phase(text) TO PUBLIC`,
    // The plan lock as a lease row (see runner/plan-lock.ts): it holds through
    // any pooler, unlike a session advisory lock. No foreign key: the lease is
    // taken before the plan's row exists.
    `CREATE TABLE IF NOT EXISTS ${s}.leases (
      plan text PRIMARY KEY CHECK (plan ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
      token uuid NOT NULL,
      holder text NOT NULL,
      pid integer NOT NULL,
      beacon bigint NOT NULL,
      acquired_at timestamptz NOT NULL,
      heartbeat_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      CHECK (heartbeat_at >= acquired_at),
      CHECK (expires_at > heartbeat_at)
    )`,
    grantUsageSql(schema, STATE_TABLES_V2),
  ];
}

/**
 * Version 3: what the backfill's final check needs to read only the rows that
 * may have changed since their batch (see backfill/verify.ts): the
 * transaction horizon when the walk started and the id of every committed
 * batch transaction (one row per batch, committed with it); and for a
 * partitioned table, the leaf partitions walked one by one, each with its
 * upper key, and the one the checkpoint is in.
 */
function version3(schema: string): string[] {
  const s = ident(schema);
  return [
    `ALTER TABLE ${s}.backfill ADD COLUMN IF NOT EXISTS since_xid xid8`,
    `ALTER TABLE ${s}.backfill ADD COLUMN IF NOT EXISTS partitions jsonb`,
    `ALTER TABLE ${s}.backfill ADD COLUMN IF NOT EXISTS partition text`,
    // backfill.workers > 1: the key ranges fixed at start, one per worker, each with its own checkpoint.
    `CREATE TABLE IF NOT EXISTS ${s}.backfill_ranges (
      plan text NOT NULL REFERENCES ${s}.backfill (plan) ON DELETE CASCADE,
      worker integer NOT NULL CHECK (worker >= 0),
      lower_key jsonb,
      upper_key jsonb NOT NULL,
      last_key jsonb,
      rows_done bigint NOT NULL DEFAULT 0 CHECK (rows_done >= 0),
      finished_at timestamptz,
      PRIMARY KEY (plan, worker)
    )`,
    `CREATE TABLE IF NOT EXISTS ${s}.backfill_batches (
      plan text NOT NULL REFERENCES ${s}.backfill (plan) ON DELETE CASCADE,
      xid xid8 NOT NULL,
      PRIMARY KEY (plan, xid)
    )`,
  ];
}

/**
 * Version 4: what the old-code gate remembers (see docs/gate-and-drift.md).
 * `old_code_writes` holds one row per plan and client session that wrote the
 * old columns, written through `old_code_write()` by the sync trigger on the
 * session's first such write; one row per session, so two writers never
 * wait on each other's row. `old_code_statements` is the runner's snapshot
 * of pg_stat_statements entries that name an old column, so a later look can
 * tell which ones ran again.
 */
function version4(schema: string): string[] {
  const s = ident(schema);
  return [
    `CREATE TABLE IF NOT EXISTS ${s}.old_code_writes (
      plan text NOT NULL,
      pid integer NOT NULL,
      backend_start timestamptz NOT NULL,
      first_at timestamptz NOT NULL,
      application_name text,
      usename text,
      client_addr inet,
      PRIMARY KEY (plan, pid, backend_start)
    )`,
    // SECURITY DEFINER: the trigger runs with the writer's rights, and no
    // application role may write the state tables; this is the one thing it
    // may do to them. The fixed search_path and the qualified names leave a
    // caller nothing to substitute. Any role calling it can only make the gate
    // more careful (a row that says old code wrote), never less.
    `CREATE OR REPLACE FUNCTION ${s}.old_code_write(plan_name text) RETURNS void
      LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog
      AS $$
        INSERT INTO ${s}.old_code_writes (plan, pid, backend_start, first_at, application_name, usename, client_addr)
        SELECT plan_name, pg_backend_pid(), coalesce((SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid())), pg_postmaster_start_time()),
               clock_timestamp(), current_setting('application_name'), session_user, inet_client_addr()
        ON CONFLICT (plan, pid, backend_start) DO NOTHING
      $$`,
    `GRANT EXECUTE ON FUNCTION ${s}.old_code_write(text) TO PUBLIC`,
    `CREATE TABLE IF NOT EXISTS ${s}.old_code_statements (
      plan text NOT NULL,
      queryid bigint NOT NULL,
      userid oid NOT NULL,
      calls bigint NOT NULL CHECK (calls >= 0),
      query text NOT NULL,
      changed_at timestamptz NOT NULL,
      PRIMARY KEY (plan, queryid, userid)
    )`,
  ];
}

/**
 * Version 5: `backfill.workers` on a partitioned table. Each non-empty leaf
 * partition is a range of `backfill_ranges` (from its first key to its last
 * at the start), and `partition` names it; the workers take the ranges one
 * after another. Null for the ranges of a plain table.
 */
function version5(schema: string): string[] {
  return [`ALTER TABLE ${ident(schema)}.backfill_ranges ADD COLUMN IF NOT EXISTS partition text`];
}

/**
 * Version 6: the state schema is safe to run as a superuser in a database
 * other roles can write to (issue 19).
 *
 * - Both state functions run under `search_path = pg_catalog, pg_temp`:
 *   with `pg_catalog` alone PostgreSQL still searches `pg_temp` first for
 *   relations, and every name in their bodies outside `pg_catalog` is
 *   schema-qualified.
 * - `old_code_write()` stores only what the gate needs. It is SECURITY
 *   DEFINER and callable by PUBLIC (every application role's trigger calls
 *   it), so it checks its caller: the name must be a plan in flight (so no
 *   made-up or oversized name is stored), and the session must be able to
 *   write the plan's table, as `session_user` or a role it may `SET ROLE`
 *   to. `current_user` inside the function is its owner, and `session_user`
 *   alone would miss an application that logs in as an authenticator and
 *   switches role (PostgREST); a session that may become a writer could write
 *   the old columns itself, so recording it is honest. One row per plan and
 *   session (its pid and start), upserted, `application_name` cut to 64
 *   characters; at most 1000 rows per plan (the oldest first write gives
 *   way), so a role that reconnects in a loop cannot fill the table.
 * - `leases.backend_pid`: the backend that holds the lease's beacon; only an
 *   exclusive advisory lock held by that backend vouches for the lease (see
 *   runner/plan-lock.ts), so a session that queues a shared lock on the key
 *   cannot keep a dead runner's lease alive.
 */
function version6(schema: string): string[] {
  const s = ident(schema);
  return [
    `ALTER TABLE ${s}.leases ADD COLUMN IF NOT EXISTS backend_pid integer`,
    `CREATE OR REPLACE FUNCTION ${s}.phase(plan_name text) RETURNS text
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
      AS $$ SELECT p.phase FROM ${s}.plans p WHERE p.name = plan_name $$`,
    `CREATE OR REPLACE FUNCTION ${s}.old_code_write(plan_name text) RETURNS void
      LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
      AS $pgshift_ow$
      DECLARE
        target regclass;
        started timestamptz := coalesce((SELECT a.backend_start FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a),
                                        pg_catalog.pg_postmaster_start_time());
      BEGIN
        SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', p.facts #>> '{table,schema}', p.facts #>> '{table,name}')) INTO target
          FROM ${s}.plans p WHERE p.name = plan_name AND p.status IN ('in_progress', 'failed');
        IF target IS NULL THEN
          RAISE EXCEPTION 'pgshift: % is not a plan in flight', pg_catalog.quote_literal(pg_catalog.left(plan_name, 60))
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT pg_catalog.has_any_column_privilege(session_user, target, 'INSERT, UPDATE')
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_roles r
                            WHERE pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')
                              AND pg_catalog.has_any_column_privilege(r.oid, target, 'INSERT, UPDATE')) THEN
          RAISE EXCEPTION 'pgshift: role % may not write %, so it is not old code of plan %', session_user, target, plan_name
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF EXISTS (SELECT FROM ${s}.old_code_writes w WHERE w.plan = plan_name AND w.pid = pg_catalog.pg_backend_pid() AND w.backend_start = started) THEN
          RETURN;
        END IF;
        IF (SELECT pg_catalog.count(*) FROM ${s}.old_code_writes w WHERE w.plan = plan_name) >= 1000 THEN
          DELETE FROM ${s}.old_code_writes w
           WHERE w.ctid = (SELECT o.ctid FROM ${s}.old_code_writes o WHERE o.plan = plan_name ORDER BY o.first_at LIMIT 1);
        END IF;
        INSERT INTO ${s}.old_code_writes (plan, pid, backend_start, first_at, application_name, usename, client_addr)
        VALUES (plan_name, pg_catalog.pg_backend_pid(), started, pg_catalog.clock_timestamp(),
                pg_catalog.left(pg_catalog.current_setting('application_name'), 64), session_user, pg_catalog.inet_client_addr())
        ON CONFLICT (plan, pid, backend_start) DO NOTHING;
      END
      $pgshift_ow$`,
    `GRANT EXECUTE ON FUNCTION ${s}.old_code_write(text) TO PUBLIC`,
  ];
}

/**
 * Version 7: steering a running backfill through the state schema, from any
 * machine (`migrate plan pause | resume | tune`). One row per plan; a null
 * setting is the plan file's. The walk reads the row before each batch, so a
 * pause holds across a restart of the runner.
 */
function version7(schema: string): string[] {
  const s = ident(schema);
  return [
    `CREATE TABLE IF NOT EXISTS ${s}.backfill_control (
      plan text PRIMARY KEY REFERENCES ${s}.plans (name) ON DELETE CASCADE,
      paused boolean NOT NULL DEFAULT false,
      target_batch_ms integer CHECK (target_batch_ms >= 0),
      pause_ms integer CHECK (pause_ms >= 0),
      workers integer CHECK (workers BETWEEN 1 AND 16),
      max_replica_lag_ms integer CHECK (max_replica_lag_ms >= 0),
      changed_at timestamptz NOT NULL DEFAULT now(),
      changed_by text NOT NULL DEFAULT session_user
    )`,
  ];
}

/**
 * Version 8: the old-code gate judges writes, not connections (issue 22).
 *
 * - `plans.old_code_generation` and `old_code_generation_at`: the gate's
 *   current generation and when it started. The sync functions' mark sets a
 *   session setting named after the generation (changes/old-code-mark.ts);
 *   pgshift starts a new one when it starts watching and whenever a check saw
 *   writes, so every session records again on its next old-side write. A
 *   plan started before this version is in generation 0, started when the
 *   plan started (null here).
 * - `old_code_writes.last_at`: the session's latest recorded write. A
 *   session recorded in an earlier generation moves it on, once per
 *   generation (a row older than the generation's start), so a session
 *   calling `old_code_write()` in a loop still writes nothing; its
 *   application_name, user and address follow the latest write, which behind
 *   a pooler is the client that wrote. Null for rows recorded before this
 *   version: their first write is their last known one.
 * - `old_code_write()` keeps version 6's checks of its caller and its cap.
 */
function version8(schema: string): string[] {
  const s = ident(schema);
  return [
    `ALTER TABLE ${s}.plans ADD COLUMN IF NOT EXISTS old_code_generation integer NOT NULL DEFAULT 0 CHECK (old_code_generation >= 0)`,
    `ALTER TABLE ${s}.plans ADD COLUMN IF NOT EXISTS old_code_generation_at timestamptz`,
    `ALTER TABLE ${s}.old_code_writes ADD COLUMN IF NOT EXISTS last_at timestamptz`,
    `CREATE OR REPLACE FUNCTION ${s}.old_code_write(plan_name text) RETURNS void
      LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
      AS $pgshift_ow$
      DECLARE
        target regclass;
        watch_from timestamptz;
        started timestamptz := coalesce((SELECT a.backend_start FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a),
                                        pg_catalog.pg_postmaster_start_time());
      BEGIN
        SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', p.facts #>> '{table,schema}', p.facts #>> '{table,name}')), p.old_code_generation_at
          INTO target, watch_from
          FROM ${s}.plans p WHERE p.name = plan_name AND p.status IN ('in_progress', 'failed');
        IF target IS NULL THEN
          RAISE EXCEPTION 'pgshift: % is not a plan in flight', pg_catalog.quote_literal(pg_catalog.left(plan_name, 60))
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT pg_catalog.has_any_column_privilege(session_user, target, 'INSERT, UPDATE')
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_roles r
                            WHERE pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')
                              AND pg_catalog.has_any_column_privilege(r.oid, target, 'INSERT, UPDATE')) THEN
          RAISE EXCEPTION 'pgshift: role % may not write %, so it is not old code of plan %', session_user, target, plan_name
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF EXISTS (SELECT FROM ${s}.old_code_writes w WHERE w.plan = plan_name AND w.pid = pg_catalog.pg_backend_pid() AND w.backend_start = started) THEN
          -- Recorded already: once more per generation, so a loop of calls writes nothing.
          UPDATE ${s}.old_code_writes w
             SET last_at = pg_catalog.clock_timestamp(), application_name = pg_catalog.left(pg_catalog.current_setting('application_name'), 64),
                 usename = session_user, client_addr = pg_catalog.inet_client_addr()
           WHERE w.plan = plan_name AND w.pid = pg_catalog.pg_backend_pid() AND w.backend_start = started
             AND watch_from IS NOT NULL AND coalesce(w.last_at, w.first_at) < watch_from;
          RETURN;
        END IF;
        IF (SELECT pg_catalog.count(*) FROM ${s}.old_code_writes w WHERE w.plan = plan_name) >= 1000 THEN
          DELETE FROM ${s}.old_code_writes w
           WHERE w.ctid = (SELECT o.ctid FROM ${s}.old_code_writes o WHERE o.plan = plan_name ORDER BY o.first_at LIMIT 1);
        END IF;
        INSERT INTO ${s}.old_code_writes (plan, pid, backend_start, first_at, last_at, application_name, usename, client_addr)
        VALUES (plan_name, pg_catalog.pg_backend_pid(), started, pg_catalog.clock_timestamp(), pg_catalog.clock_timestamp(),
                pg_catalog.left(pg_catalog.current_setting('application_name'), 64), session_user, pg_catalog.inet_client_addr())
        ON CONFLICT (plan, pid, backend_start) DO NOTHING;
      END
      $pgshift_ow$`,
    `GRANT EXECUTE ON FUNCTION ${s}.old_code_write(text) TO PUBLIC`,
  ];
}

/**
 * Version 9: contract archives the old columns instead of dropping them
 * (issue 20). One row per plan whose contract renamed its old columns aside:
 * `columns` maps each old column to its archive name; `indexes` holds the
 * definitions (`pg_get_indexdef`) of the plain indexes contract dropped
 * CONCURRENTLY, rebuilt by contract's rollback; `archived_at` and `keep`
 * say when the first `apply` drops the archive (`contract.keep`);
 * `refilling` marks a rollback of contract whose refill of the old columns
 * has started (its checkpoint is then its own, not the forward backfill's);
 * `purged_at` is set once the archived columns are dropped. Its own table,
 * so it touches nothing another version adds to `plans`; of `plans` it
 * only relaxes version 1's CHECK that a plan at contract is complete: a
 * rollback of contract leaves it in flight at contract until it is done.
 */
function version9(schema: string): string[] {
  const s = ident(schema);
  return [
    // A plan at contract may now be rolled back: while that runs (or after it failed) it is in flight at contract.
    // Version 1 named the CHECK that forbade it after the table (plans_check); it is found by its text, not that name.
    `DO $pgshift_v9$ DECLARE c name; BEGIN
       FOR c IN SELECT k.conname FROM pg_catalog.pg_constraint k
                 WHERE k.conrelid = pg_catalog.to_regclass(${literal(`${s}.plans`)}) AND k.contype = 'c'
                   AND pg_catalog.pg_get_constraintdef(k.oid) LIKE '%(status = ''complete''::text)%'
                   AND pg_catalog.pg_get_constraintdef(k.oid) LIKE '%''contract''::text%'
       LOOP
         EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', ${literal(`${s}.plans`)}, c);
       END LOOP;
     END $pgshift_v9$`,
    // Every step may run again on a state whose version went unrecorded (0.1.0 kept none): drop before adding.
    `ALTER TABLE ${s}.plans DROP CONSTRAINT IF EXISTS plans_complete_at_contract,
       ADD CONSTRAINT plans_complete_at_contract CHECK (status <> 'complete' OR phase = 'contract')`,
    `CREATE TABLE IF NOT EXISTS ${s}.archives (
      plan text PRIMARY KEY REFERENCES ${s}.plans (name) ON DELETE CASCADE,
      columns jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(columns) = 'array'),
      indexes jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(indexes) = 'array'),
      archived_at timestamptz,
      keep interval CHECK (keep >= interval '0'),
      refilling boolean NOT NULL DEFAULT false,
      purged_at timestamptz,
      CHECK ((archived_at IS NULL) = (keep IS NULL)),
      CHECK (purged_at IS NULL OR archived_at IS NOT NULL)
    )`,
  ];
}

/**
 * Version 10: plans on one table whose columns are disjoint may be in
 * flight together. The one-in-flight-per-table index gives way to
 * `plan_columns`: every column a plan in flight reads, writes, adds or drops
 * (its kind's `outline()`), one row each, unique per table and column. A
 * plan's claims are inserted in the transaction that records its start and
 * deleted when it is contracted or rolled back, so two runners starting
 * overlapping plans at the same instant cannot both start: the second
 * insert waits on the first one's index entry and fails with a unique
 * violation once it commits (it is then told to wait behind it).
 *
 * A plan in flight from before this version has no list of its columns: it
 * claims every column its table had at its start, and each column it adds,
 * so it still keeps every other plan on its table waiting, as it did.
 */
function version10(schema: string): string[] {
  const s = ident(schema);
  return [
    `CREATE TABLE IF NOT EXISTS ${s}.plan_columns (
      plan text NOT NULL REFERENCES ${s}.plans (name) ON DELETE CASCADE,
      table_name text NOT NULL,
      column_name text NOT NULL,
      PRIMARY KEY (table_name, column_name)
    )`,
    `CREATE INDEX IF NOT EXISTS plan_columns_plan ON ${s}.plan_columns (plan)`,
    `INSERT INTO ${s}.plan_columns (plan, table_name, column_name)
     SELECT DISTINCT p.name, p.table_name, c.name
       FROM ${s}.plans p
      CROSS JOIN LATERAL (SELECT e ->> 'name' AS name FROM pg_catalog.jsonb_array_elements(coalesce(p.facts -> 'columns', '[]')) e
                          UNION SELECT k FROM pg_catalog.jsonb_object_keys(coalesce(p.facts -> 'newTypes', '{}')) k) c
      WHERE p.status IN ('in_progress', 'failed') AND c.name IS NOT NULL
     ON CONFLICT DO NOTHING`,
    `DROP INDEX IF EXISTS ${s}.plans_one_in_flight_per_table`,
  ];
}

/** The state tables version 2 knew: its step's SQL is frozen with them. */
const STATE_TABLES_V2: readonly string[] = ['plans', 'events', 'backfill', 'schema_version', 'leases'];

/** The tables of the state schema: a schema holding no other table is pgshift's own. */
export const STATE_TABLES: readonly string[] = [
  ...STATE_TABLES_V2,
  'backfill_batches',
  'backfill_ranges',
  'old_code_writes',
  'old_code_statements',
  'backfill_control',
  'archives',
  'plan_columns',
];

/** The functions of the state schema (the plans' own functions live there too, under other names). */
export const STATE_FUNCTIONS: readonly string[] = ['phase', 'old_code_write'];

/**
 * `GRANT USAGE ON SCHEMA … TO PUBLIC`, so any role can call `phase()`, when
 * the schema is pgshift's own: the runner may act as its owner and it holds
 * no table but pgshift's state tables (which grant nothing to anyone, so
 * USAGE lets a role look names up and read nothing). A schema of the user's
 * that also holds other tables is left as it is: widening who may reach
 * those is not pgshift's call (docs/trigger.md gives the GRANT to run).
 */
function grantUsageSql(schema: string, tables: readonly string[]): string {
  return `DO $pgshift_grant$ BEGIN
      IF EXISTS (SELECT 1 FROM pg_namespace n
                  WHERE n.nspname = ${literal(schema)} AND pg_has_role(n.nspowner, 'USAGE')
                    AND NOT EXISTS (SELECT 1 FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a WHERE a.grantee = 0 AND a.privilege_type = 'USAGE')
                    AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                                      AND c.relname <> ALL (ARRAY[${tables.map(literal).join(', ')}]))) THEN
        GRANT USAGE ON SCHEMA ${ident(schema)} TO PUBLIC;
      END IF;
    END $pgshift_grant$`;
}

/** The state schema's whole history, oldest first; the last step's version is the current one. */
export const STATE_MIGRATIONS: readonly StateMigration[] = [
  { version: 1, description: 'plans, events, backfill checkpoint, phase()', statements: version1 },
  { version: 2, description: 'record the schema version and forced events; change kinds no longer fixed by a CHECK', statements: version2 },
  { version: 3, description: 'backfill: batch transaction ids and start horizon for the final check; partition by partition', statements: version3 },
  { version: 4, description: 'the old-code gate: writes of the old columns by clients, statements naming them', statements: version4 },
  { version: 5, description: "backfill: several workers over a partitioned table's partitions", statements: version5 },
  {
    version: 6,
    description: 'state functions under a fixed search_path; old_code_write() checks its caller and is bounded; the beacon backend',
    statements: version6,
  },
  { version: 7, description: 'steer a running backfill: pause, resume, tune', statements: version7 },
  { version: 8, description: 'the old-code gate in generations: writes seen since a time, not sessions still connected', statements: version8 },
  { version: 9, description: 'contract archives the old columns: their archive names, dropped indexes, how long they are kept', statements: version9 },
  { version: 10, description: 'plans on one table in flight together when their columns are disjoint', statements: version10 },
];

/** The state schema version this pgshift writes and understands. */
export const STATE_SCHEMA_VERSION = STATE_MIGRATIONS[STATE_MIGRATIONS.length - 1]!.version;
