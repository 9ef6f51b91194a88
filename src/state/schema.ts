import { withTransaction, type Client } from '../db/client.js';
import { ident } from '../db/ident.js';
import { DEFAULT_LOCK_TIMEOUT_MS } from '../defaults.js';
import { StateSchemaError } from '../errors.js';
import { VERSION } from '../version.js';
import { STATE_MIGRATIONS, STATE_SCHEMA_VERSION } from './migrations.js';
import { assertTrustedState } from './trust.js';

/**
 * The version of the state schema in `schema`: 0 when there is none, 1 for
 * the tables pgshift 0.1.0 made (they predate the version table), else what
 * `schema_version` records.
 */
export async function stateSchemaVersion(client: Client, schema: string): Promise<number> {
  const s = ident(schema);
  const { rows } = await client.query<{ versioned: boolean; plans: boolean }>(
    `SELECT to_regclass($1) IS NOT NULL AS versioned, to_regclass($2) IS NOT NULL AS plans`,
    [`${s}.schema_version`, `${s}.plans`],
  );
  const { versioned, plans } = rows[0]!;
  if (!versioned) return plans ? 1 : 0;
  const { rows: v } = await client.query<{ version: number }>(`SELECT version FROM ${s}.schema_version`);
  return v[0]?.version ?? 1;
}

/** Refuse a state schema written by a newer pgshift: its meaning may have changed under us. */
export function assertNotNewer(schema: string, version: number): void {
  if (version > STATE_SCHEMA_VERSION) throw new StateSchemaError(schema, version, STATE_SCHEMA_VERSION);
}

/**
 * Create the state schema, or upgrade an older one in place, to
 * `STATE_SCHEMA_VERSION`. Runners starting at once serialise on a
 * transaction-level advisory lock, and the version is read again under it,
 * so each step runs once; the steps and the version bump commit together.
 * The state tables are small and only pgshift writes them, but the
 * application reads `phase()` from them: `lock_timeout` keeps an upgrade's
 * ALTERs from queueing those reads for long. A schema holding state objects
 * the runner cannot trust, or one where another role could create them
 * first, is refused before any step (see state/trust.ts).
 */
export async function ensureStateSchema(client: Client, schema: string): Promise<void> {
  const s = ident(schema);
  await withTransaction(client, async () => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`pgshift-schema:${schema}`]);
    await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${DEFAULT_LOCK_TIMEOUT_MS}ms`]);
    // Under the lock, before the version is read: that read, and the steps below, touch whatever holds the state tables' names.
    await assertTrustedState(client, schema, true);
    const from = await stateSchemaVersion(client, schema);
    assertNotNewer(schema, from);
    if (from === STATE_SCHEMA_VERSION) return;
    // CREATE SCHEMA IF NOT EXISTS checks the database's CREATE privilege even
    // when the schema exists, so an existing schema is never created again.
    const { rows } = await client.query<{ present: boolean }>(`SELECT to_regnamespace($1) IS NOT NULL AS present`, [s]);
    if (!rows[0]!.present) await client.query(`CREATE SCHEMA ${s}`);
    for (const step of STATE_MIGRATIONS.filter((m) => m.version > from)) {
      for (const sql of step.statements(schema)) await client.query(sql);
    }
    // Again before the first row is written, in the same transaction: whatever appeared since the check above is refused
    // and everything the steps did rolls back.
    await assertTrustedState(client, schema, false);
    await client.query(
      `INSERT INTO ${s}.schema_version (singleton, version, written_by) VALUES (true, $1, $2)
       ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, written_by = EXCLUDED.written_by, upgraded_at = now()`,
      [STATE_SCHEMA_VERSION, VERSION],
    );
  });
}
