import { ident } from '../db/ident.js';

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
 * `--force` was given, and `plans.kind` is no
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
  ];
}

/** The state schema's whole history, oldest first; the last step's version is the current one. */
export const STATE_MIGRATIONS: readonly StateMigration[] = [
  { version: 1, description: 'plans, events, backfill checkpoint, phase()', statements: version1 },
  { version: 2, description: 'record the schema version and forced events; change kinds no longer fixed by a CHECK', statements: version2 },
];

/** The state schema version this pgshift writes and understands. */
export const STATE_SCHEMA_VERSION = STATE_MIGRATIONS[STATE_MIGRATIONS.length - 1]!.version;
