import type { Client } from '../db/client.js';
import { display, ident, literal, qualified, type QualifiedName } from '../db/ident.js';

/**
 * Roles that hold privileges on the table (or on some of its columns) but
 * no USAGE on the existing state schema: they cannot call
 * `<schema>.phase('<plan>')` to switch their reads. When pgshift creates
 * its state tables it grants USAGE to PUBLIC on a schema that is its own: one
 * it creates, or one the runner owns that holds nothing else (see
 * `ensureStateSchema`); so nothing is said of a schema that does not exist
 * yet or will be granted so. A schema of the team's that also holds other
 * tables keeps the team's grants: each such role needs one GRANT. Superusers
 * are skipped; a grant to PUBLIC on the table is met by one on the schema.
 */
export async function affectedRoles(client: Client, table: QualifiedName, stateSchema: string, planName: string): Promise<string[]> {
  const { rows } = await client.query<{ role: string }>(
    `WITH schema AS (
            SELECT oid, nspacl FROM pg_namespace n WHERE nspname = $2
               -- not one that the first apply will open to PUBLIC (owned by the runner, no relation in it yet)
               AND NOT (pg_has_role(n.nspowner, 'USAGE')
                        AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')))
          ),
          grantees AS (
            SELECT (aclexplode(c.relacl)).grantee AS g FROM pg_class c WHERE c.oid = $1::regclass
            UNION
            SELECT (aclexplode(a.attacl)).grantee FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
          )
     SELECT CASE WHEN g.g = 0 THEN 'PUBLIC' ELSE r.rolname::text END AS role
       FROM grantees g CROSS JOIN schema s LEFT JOIN pg_roles r ON r.oid = g.g
      WHERE CASE WHEN g.g = 0
                 THEN NOT EXISTS (SELECT 1 FROM aclexplode(s.nspacl) x WHERE x.grantee = 0 AND x.privilege_type = 'USAGE')
                 ELSE NOT r.rolsuper AND NOT has_schema_privilege(g.g, s.oid, 'USAGE') END
      ORDER BY 1`,
    [qualified(table), stateSchema],
  );
  const s = ident(stateSchema);
  return rows.map(
    (row) =>
      `role ${row.role === 'PUBLIC' ? 'PUBLIC' : ident(row.role)} has privileges on ${display(table)} but no USAGE on the state schema ${s}: ` +
      `it cannot call ${s}.phase(${literal(planName)}) to switch its reads; fix: GRANT USAGE ON SCHEMA ${s} TO ${row.role === 'PUBLIC' ? 'PUBLIC' : ident(row.role)}`,
  );
}
