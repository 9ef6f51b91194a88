import type { Client } from '../db/client.js';
import { ident } from '../db/ident.js';
import type { PlanProblem } from '../errors.js';
import type { Plan } from './types.js';

/**
 * One privilege the connected role lacks: what, on which object, why pgshift
 * needs it, and the statement that grants it. Reported before any change
 * (exit 2), so a run never stops half-way on `permission denied`.
 */
export interface MissingPrivilege {
  /** `CREATE`, `TEMPORARY`, `USAGE`, `ownership`, … */
  readonly privilege: string;
  /** `database "app"`, `schema "pgshift"`, `table public.users`. */
  readonly object: string;
  /** What pgshift does with it, and in which phases. */
  readonly why: string;
  /** The SQL that fixes it, run by the object's owner or a superuser. */
  readonly fix: string;
}

/**
 * The state tables (see state/migrations.ts) and the privileges each run
 * needs on them (checked one by one: `has_table_privilege` with a list is
 * true if ANY is held). `schema_version` is only read: upgrading it is the
 * schema owner's work.
 */
const STATE_TABLE_PRIVILEGES: readonly (readonly [string, readonly string[]])[] = [
  ['plans', ['SELECT', 'INSERT', 'UPDATE']],
  ['events', ['SELECT', 'INSERT']],
  ['backfill', ['SELECT', 'INSERT', 'UPDATE', 'DELETE']],
  ['schema_version', ['SELECT']],
  ['leases', ['SELECT', 'INSERT', 'UPDATE', 'DELETE']],
  ['backfill_batches', ['SELECT', 'INSERT', 'DELETE']],
  ['backfill_ranges', ['SELECT', 'INSERT', 'UPDATE', 'DELETE']],
  // The old-code gate: reads what the trigger recorded and forgets week-old rows; keeps its pg_stat_statements snapshot.
  ['old_code_writes', ['SELECT', 'DELETE']],
  ['old_code_statements', ['SELECT', 'INSERT', 'UPDATE']],
  // pause, resume, tune: the walk reads it before each batch; the steering commands write it.
  ['backfill_control', ['SELECT', 'INSERT', 'UPDATE']],
  // contract records what it archived; its rollback and purge update or forget it.
  ['archives', ['SELECT', 'INSERT', 'UPDATE', 'DELETE']],
  // The columns each plan in flight claims on its table: written when a plan starts, cleared when it leaves flight.
  ['plan_columns', ['SELECT', 'INSERT', 'DELETE']],
];

/** SQLSTATE of `permission denied`. */
export const INSUFFICIENT_PRIVILEGE = '42501';

/** `"role"` of the session, for GRANT statements (`current_user`: SET ROLE counts, as it does for every check below). */
export async function whoAmI(client: Client): Promise<{ role: string; database: string }> {
  const { rows } = await client.query<{ role: string; database: string }>(`SELECT current_user::text AS role, current_database()::text AS database`);
  return rows[0]!;
}

/**
 * What the runner needs to read and write its state in `schema`, checked
 * before the first read of it: a missing schema is created (CREATE on the
 * database); an existing one is used as it is (USAGE; CREATE when the state
 * tables are still to be made; the table privileges otherwise). An existing
 * schema needs no database-level CREATE: that is how a role without it, as
 * on most managed services, runs pgshift (`--schema` naming a schema made
 * beforehand).
 */
export async function statePrivileges(client: Client, schema: string): Promise<MissingPrivilege[]> {
  const { role, database } = await whoAmI(client);
  const s = ident(schema);
  const missing: MissingPrivilege[] = [];
  const { rows } = await client.query<{ oid: number | null; db_create: boolean; usage: boolean | null; create: boolean | null }>(
    `SELECT n.oid::int8::float8 AS oid, has_database_privilege(current_database(), 'CREATE') AS db_create,
            has_schema_privilege(n.oid, 'USAGE') AS usage, has_schema_privilege(n.oid, 'CREATE') AS create
       FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = $1`,
    [schema],
  );
  const row = rows[0]!;
  if (row.oid === null) {
    if (!row.db_create) {
      missing.push({
        privilege: 'CREATE',
        object: `database ${ident(database)}`,
        why: `to create the state schema ${s} on the first apply`,
        fix: `GRANT CREATE ON DATABASE ${ident(database)} TO ${ident(role)}; or, without it, make the schema once for the role: CREATE SCHEMA ${s} AUTHORIZATION ${ident(role)} (or pass --schema naming an existing schema it may create in)`,
      });
    }
    return missing;
  }
  if (!row.usage) {
    missing.push({
      privilege: 'USAGE',
      object: `schema ${s}`,
      why: "to read and write pgshift's state in it",
      fix: `GRANT USAGE ON SCHEMA ${s} TO ${ident(role)}`,
    });
  }
  const tables = await client.query<{ name: string; oid: number }>(
    `SELECT c.relname::text AS name, c.oid::int8::float8 AS oid FROM pg_class c WHERE c.relnamespace = $1 AND c.relname = ANY ($2::text[])`,
    [row.oid, STATE_TABLE_PRIVILEGES.map(([t]) => t)],
  );
  if (tables.rows.length < STATE_TABLE_PRIVILEGES.length) {
    if (!row.create) {
      missing.push({
        privilege: 'CREATE',
        object: `schema ${s}`,
        why: "to create pgshift's state tables in it on the first apply",
        fix: `GRANT CREATE ON SCHEMA ${s} TO ${ident(role)}`,
      });
    }
    return missing;
  }
  for (const [name, privileges] of STATE_TABLE_PRIVILEGES) {
    const oid = tables.rows.find((t) => t.name === name)!.oid;
    const lacking: string[] = [];
    for (const privilege of privileges) {
      const held = await client.query<{ ok: boolean }>(`SELECT has_table_privilege($1::oid, $2) AS ok`, [oid, privilege]);
      if (!held.rows[0]!.ok) lacking.push(privilege);
    }
    if (lacking.length) {
      const table = `${s}.${ident(name)}`;
      missing.push({
        privilege: lacking.join(', '),
        object: `table ${table}`,
        why: 'to record plans, events and backfill progress',
        fix: `GRANT ${lacking.join(', ')} ON ${table} TO ${ident(role)}`,
      });
    }
  }
  return missing;
}

/** The session may use the database's temporary schema: the catalog check and the retype probe build temporary tables. */
export async function tempPrivilege(client: Client): Promise<MissingPrivilege[]> {
  const { role, database } = await whoAmI(client);
  const { rows } = await client.query<{ ok: boolean }>(`SELECT has_database_privilege(current_database(), 'TEMPORARY') AS ok`);
  if (rows[0]!.ok) return [];
  return [
    {
      privilege: 'TEMPORARY',
      object: `database ${ident(database)}`,
      why: 'to check a plan against the catalog before it starts (types, expressions, what depends on the columns are tried on temporary tables, rolled back)',
      fix: `GRANT TEMPORARY ON DATABASE ${ident(database)} TO ${ident(role)}`,
    },
  ];
}

/**
 * USAGE on the schema of the plan's table, checked before the table is
 * looked up (a lookup in a schema without USAGE is an error, not "absent").
 * Nothing when the schema does not exist or the plan names none.
 */
export async function tableSchemaPrivilege(client: Client, schema: string | undefined): Promise<MissingPrivilege[]> {
  if (!schema) return [];
  const { role } = await whoAmI(client);
  const { rows } = await client.query<{ ok: boolean }>(`SELECT has_schema_privilege(oid, 'USAGE') AS ok FROM pg_namespace WHERE nspname = $1`, [schema]);
  if (rows[0]?.ok !== false) return [];
  return [
    {
      privilege: 'USAGE',
      object: `schema ${ident(schema)}`,
      why: "to reach the plan's table",
      fix: `GRANT USAGE ON SCHEMA ${ident(schema)} TO ${ident(role)}`,
    },
  ];
}

/** One plan problem per missing privilege, each naming the role, the privilege, the object and the fix. */
export async function privilegeProblems(client: Client, plan: Plan, missing: readonly MissingPrivilege[]): Promise<PlanProblem[]> {
  if (!missing.length) return [];
  const { role } = await whoAmI(client);
  return missing.map((m) => ({
    file: plan.file,
    path: '',
    message: `role ${ident(role)} lacks ${m.privilege === 'ownership' ? 'ownership of' : `${m.privilege} on`} ${m.object}, needed ${m.why}; fix: ${m.fix} (see docs/privileges.md)`,
  }));
}
