import { SAFE_PATH_IN_TRANSACTION } from '../changes/sql-objects.js';
import { withRolledBackTransaction, type Client } from '../db/client.js';
import type { PlanProblem } from '../errors.js';
import type { Plan } from './types.js';

/**
 * Warnings for each schema on the plan's search_path, and the state schema,
 * in which a role other than the runner and the superusers may create
 * objects (`PUBLIC` when everyone may: PostgreSQL 14's default for `public`,
 * kept by every database upgraded from it). Such a role can plant a function
 * or operator that matches an unqualified name better than the one meant
 * (issue 19). pgshift itself binds the plan's names once, at start, refuses
 * ones owned by untrusted roles, and runs what it generates under
 * `search_path = pg_catalog, pg_temp`; but the application and every other
 * session that resolves names through that schema stay exposed, and a state
 * schema others may write is pgshift's own objects' neighbourhood. A warning,
 * or a refusal under `strict`.
 *
 * `searchPath` is the plan's (recorded at start, or the session's for a plan
 * not started yet); it is expanded to its existing schemas as PostgreSQL
 * would, in a rolled-back transaction so the session keeps its own.
 */
export async function writableSchemaWarnings(client: Client, searchPath: string | undefined, stateSchema: string): Promise<string[]> {
  return withRolledBackTransaction(client, async () => {
    // Unset: the session's own, as the catalog check will record it.
    if (searchPath !== undefined) await client.query(`SELECT pg_catalog.set_config('search_path', $1, true)`, [searchPath]);
    const path = (await client.query<{ s: string[] }>(`SELECT pg_catalog.current_schemas(false)::pg_catalog.text[] AS s`)).rows[0]!.s;
    // The look-up itself binds nothing through those schemas.
    await client.query(SAFE_PATH_IN_TRANSACTION);
    const { rows } = await client.query<{ schema: string; state: boolean; writers: string[] }>(
      `WITH wanted AS (SELECT s AS nspname, false AS state FROM unnest($2::text[]) AS s UNION ALL SELECT $1::text, true)
       SELECT n.nspname::text AS schema, w.state, ARRAY(
                SELECT 'PUBLIC' FROM aclexplode(n.nspacl) a WHERE a.grantee = 0 AND a.privilege_type = 'CREATE'
                UNION ALL
                SELECT r.rolname::text FROM pg_roles r
                 WHERE NOT r.rolsuper AND r.rolname <> CURRENT_USER AND NOT starts_with(r.rolname::text, 'pg_')
                   AND has_schema_privilege(r.oid, n.oid, 'CREATE')
                   AND NOT EXISTS (SELECT FROM aclexplode(n.nspacl) a WHERE a.grantee = 0 AND a.privilege_type = 'CREATE')
                 ORDER BY 1) AS writers
         FROM wanted w JOIN pg_namespace n ON n.nspname = w.nspname
        ORDER BY w.state, 1`,
      [stateSchema, path],
    );
    return rows
      .filter((r) => r.writers.length)
      .map(
        (r) =>
          `${r.state ? 'state schema' : "schema on the plan's search_path"} "${r.schema}" is writable (CREATE) by ${r.writers.join(', ')}: ` +
          `such a role can plant a function or operator that matches a name better than the one meant; ` +
          `REVOKE CREATE ON SCHEMA "${r.schema}" FROM ${r.writers.map((w) => (w === 'PUBLIC' ? w : `"${w}"`)).join(', ')} (see docs/privileges.md)`,
      );
  });
}

/** The warnings of {@link writableSchemaWarnings} as the plan's problems, when `--strict` refuses them (exit 2). */
export function strictProblems(plan: Plan, warnings: readonly string[]): PlanProblem[] {
  return warnings.map((message) => ({ file: plan.file, path: '', message: `${message}; refused under --strict` }));
}
