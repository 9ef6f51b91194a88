import { withTransaction, type Client } from '../db/client.js';
import { ident, literal } from '../db/ident.js';
import { CHANGE_KINDS } from '../plan/schema.js';
import { PHASES, STATUSES } from '../phases/phases.js';

const inList = (values: readonly string[]): string => values.map(literal).join(', ');

/**
 * The state tables. Their constraints make impossible states
 * unrepresentable: a complete plan is at `contract`, a rolled-back plan has
 * no phase, one plan at most is in flight per table, a failed plan names the
 * phase it stopped in and why, and a failed event carries its error.
 * `unfinished_phase` is set while a phase runs and cleared when it ends, so a
 * runner killed mid-phase leaves a record of what it was doing.
 */
export function stateSchemaSql(schema: string): string[] {
  const s = ident(schema);
  const phase = `text CHECK (%s IN (${inList(PHASES)}))`;
  return [
    `CREATE SCHEMA IF NOT EXISTS ${s}`,
    `CREATE TABLE IF NOT EXISTS ${s}.plans (
      name text PRIMARY KEY CHECK (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
      table_name text NOT NULL,
      kind text NOT NULL CHECK (kind IN (${inList(CHANGE_KINDS)})),
      checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
      phase ${phase.replace('%s', 'phase')},
      status text NOT NULL CHECK (status IN (${inList(STATUSES)})),
      unfinished_phase ${phase.replace('%s', 'unfinished_phase')},
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
      phase ${phase.replace('%s', 'phase')} NOT NULL,
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
    // The per-plan lease (src/runner/plan-lock.ts). No foreign key to plans: a
    // runner takes the lease before a plan's first row exists. One row per plan
    // at most (the primary key) is what makes two runners exclusive.
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
    `CREATE OR REPLACE FUNCTION ${s}.phase(plan_name text) RETURNS text
      LANGUAGE sql STABLE SET search_path = pg_catalog
      AS $$ SELECT phase FROM ${s}.plans WHERE name = plan_name $$`,
    `COMMENT ON FUNCTION ${s}.phase(text) IS 'The last phase pgshift applied for a plan (NULL when none): applications switch their reads on it.'`,
  ];
}

/**
 * Create the state schema if missing. Two runners starting at once would race
 * on CREATE SCHEMA, so creation is serialised on a transaction-level advisory
 * lock; every statement is IF NOT EXISTS or OR REPLACE.
 */
export async function ensureStateSchema(client: Client, schema: string): Promise<void> {
  await withTransaction(client, async () => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`pgshift-schema:${schema}`]);
    for (const sql of stateSchemaSql(schema)) await client.query(sql);
  });
}
