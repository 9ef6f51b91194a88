import type { Client } from '../../../db/client.js';
import { ident, type QualifiedName } from '../../../db/ident.js';
import type { KindProblem } from '../kind.js';

/** A privilege of the table's that the compatibility view gets too (the owner's own are implicit). */
export interface TableGrant {
  /** The role, or null for PUBLIC. */
  readonly grantee: string | null;
  /** `SELECT`, `INSERT`, … in PostgreSQL's order. */
  readonly privileges: readonly string[];
  /** Granted on these columns only (a column privilege), or on the whole table when absent. */
  readonly columns?: readonly string[] | undefined;
  readonly grantable: boolean;
}

/** What a rename-table learns at plan start, kept in the plan's facts under `renameTable`. */
export interface RenameTableFacts {
  readonly renameTable: {
    /** The table's new name, in its schema (for the release queue: see `alsoNamed`). */
    readonly to: string;
    /** The table's owner, who owns the compatibility view too (on PostgreSQL 14 its privileges are the ones checked on the table). */
    readonly owner: string;
    /** The table's grants and column grants at plan start, given on the view as well. */
    readonly grants: readonly TableGrant[];
    /**
     * The view is `security_invoker` (PostgreSQL 15 or later, and no column grants): the caller's privileges and row
     * policies apply on the table. Otherwise the owner's privileges are checked on the table, the caller's on the view.
     */
    readonly securityInvoker: boolean;
  };
}

/**
 * Read what the view needs, and refuse what the rename cannot do safely: a
 * name already taken in the schema (by a relation or a type: the table's row
 * type is renamed with it), and on PostgreSQL 14 a table with row-level
 * security, whose policies a view without `security_invoker` would apply as
 * the view's owner instead of the caller.
 */
export async function learnRenameTable(client: Client, table: QualifiedName, to: string): Promise<{ problems: KindProblem[]; facts: RenameTableFacts }> {
  const problems: KindProblem[] = [];
  const { rows: taken } = await client.query<{ what: string }>(
    `SELECT CASE c.relkind WHEN 'v' THEN 'a view' WHEN 'm' THEN 'a materialized view' WHEN 'S' THEN 'a sequence' WHEN 'i' THEN 'an index' WHEN 'c' THEN 'a type' ELSE 'a table' END AS what
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2
     UNION ALL
     SELECT 'a type' FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = $1 AND t.typname = $2 AND t.typrelid = 0`,
    [table.schema, to],
  );
  if (taken.length) problems.push({ path: 'rename-table.to', message: `${taken[0]!.what} named "${to}" already exists in schema "${table.schema}"` });
  if (to === table.name) problems.push({ path: 'rename-table.to', message: `the table is already named "${to}"` });

  // Grants made by anyone, to anyone but the owner (whose privileges come with owning the view); one row per grantee and grant option.
  const { rows: grants } = await client.query<{ grantee: string | null; privileges: string[]; columns: string[] | null; grantable: boolean }>(
    `WITH t AS (SELECT c.oid, c.relowner, c.relacl FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2),
          whole AS (SELECT a.grantee, a.privilege_type, a.is_grantable FROM t, pg_catalog.aclexplode(t.relacl) a WHERE a.grantee <> t.relowner),
          cols AS (SELECT a.grantee, a.privilege_type, a.is_grantable, att.attname, att.attnum
                     FROM t JOIN pg_catalog.pg_attribute att ON att.attrelid = t.oid AND att.attnum > 0 AND NOT att.attisdropped,
                          pg_catalog.aclexplode(att.attacl) a
                    WHERE a.grantee <> t.relowner)
     SELECT CASE WHEN grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(grantee)::text END AS grantee,
            pg_catalog.array_agg(privilege_type::text ORDER BY privilege_type) AS privileges, NULL::text[] AS columns, is_grantable AS grantable
       FROM whole GROUP BY grantee, is_grantable
     UNION ALL
     SELECT grantee, ARRAY[privilege_type::text], columns, grantable FROM (
       SELECT CASE WHEN grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(grantee)::text END AS grantee, privilege_type, is_grantable AS grantable,
              pg_catalog.array_agg(attname::text ORDER BY attnum) AS columns
         FROM cols GROUP BY grantee, privilege_type, is_grantable) c
     ORDER BY 1 NULLS FIRST, 3 NULLS FIRST, 2, 4`,
    [table.schema, table.name],
  );
  const { rows: rel } = await client.query<{ owner: string; rls: boolean; create: boolean; ownerCreates: boolean }>(
    `SELECT pg_catalog.pg_get_userbyid(c.relowner) AS owner, c.relrowsecurity AS rls,
            pg_catalog.has_schema_privilege(n.oid, 'CREATE') AS create,
            c.relowner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER)
              OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER)
              OR pg_catalog.has_schema_privilege(c.relowner, n.oid, 'CREATE') AS "ownerCreates"
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  );
  // Said now (exit 2) rather than met at switch-read as `permission denied`.
  if (!rel[0]!.create)
    problems.push({
      path: 'rename-table',
      message: `switch-read creates the view "${table.name}" in schema "${table.schema}", which needs CREATE there: GRANT CREATE ON SCHEMA ${ident(table.schema)} TO ${ident(await currentUser(client))}`,
    });
  // Giving the view to the table's owner (when the runner is another role) needs that owner to have CREATE on the schema too.
  if (!rel[0]!.ownerCreates)
    problems.push({
      path: 'rename-table',
      message: `the view "${table.name}" is given to the table's owner "${rel[0]!.owner}", who needs CREATE on schema "${table.schema}": GRANT CREATE ON SCHEMA ${ident(table.schema)} TO ${ident(rel[0]!.owner)}`,
    });
  const { rows: version } = await client.query<{ v: string }>(`SELECT pg_catalog.current_setting('server_version_num') AS v`);
  const invokerExists = Number(version[0]!.v) >= 150000;
  // A security_invoker view checks the caller's privileges on every column it selects (all of them), so a role granted
  // only some columns could not use it at all; the owner's view, with the same grants on it, checks those columns right.
  const columnGrants = grants.some((g) => g.columns !== null);
  const securityInvoker = invokerExists && !columnGrants;
  if (rel[0]!.rls && !securityInvoker)
    problems.push({
      path: 'rename-table',
      message: invokerExists
        ? `${table.schema}.${table.name} has row-level security and column grants: a security_invoker view (which applies the policies ` +
          'to the caller) would refuse roles granted only some columns, and a view checked as its owner would skip the policies; ' +
          'rename it in one step (ALTER TABLE … RENAME) with old code stopped, or grant those roles SELECT on the whole table'
        : `${table.schema}.${table.name} has row-level security; before PostgreSQL 15 a view cannot be security_invoker, so old code's ` +
          `queries through the view "${table.name}" would be checked against the policies as the view's owner, not as themselves; ` +
          'rename it in one step (ALTER TABLE … RENAME) with old code stopped, or upgrade to PostgreSQL 15',
    });

  return {
    problems,
    facts: {
      renameTable: {
        to,
        owner: rel[0]!.owner,
        securityInvoker,
        grants: grants.map((g) => ({ grantee: g.grantee, privileges: g.privileges, ...(g.columns ? { columns: g.columns } : {}), grantable: g.grantable })),
      },
    },
  };
}

async function currentUser(client: Client): Promise<string> {
  return (await client.query<{ role: string }>(`SELECT CURRENT_USER::text AS role`)).rows[0]!.role;
}
