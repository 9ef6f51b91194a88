import { inSavepoint, singleStatement, type Client } from '../../../db/client.js';
import { display, ident, qualified, type QualifiedName } from '../../../db/ident.js';
import type { KindProblem } from '../kind.js';

/** An index as PostgreSQL printed it: enough to build it again under any name. */
export interface IndexDefinition {
  readonly unique: boolean;
  /** Everything after `ON <table>`, e.g. `USING btree (lower(email)) WHERE (deleted_at IS NULL)`, names outside pg_catalog qualified. */
  readonly definition: string;
}

/** An existing index of the plan's table, and whether pgshift may drop it on its own. */
export interface ExistingIndex extends IndexDefinition {
  readonly name: string;
  /** The constraint it backs (UNIQUE, PRIMARY KEY, EXCLUDE), which DROP INDEX refuses. */
  readonly constraint: string | null;
  readonly valid: boolean;
}

/**
 * `pg_get_indexdef` of index `oid` without its `CREATE [UNIQUE] INDEX <name>
 * ON <table> ` head, printed under an empty search_path so that every name
 * outside pg_catalog comes out schema-qualified. The head is rebuilt from
 * the catalog and checked, rather than cut at the first ` USING `, which a
 * quoted name could contain (PostgreSQL 18 prints the session's temporary
 * schema as `pg_temp`, 14 by its own name: either is accepted).
 */
const DEFINITION_SQL = `
  SELECT i.indisunique AS unique, i.indisvalid AS valid, c.relname AS name,
         (SELECT k.conname FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid LIMIT 1) AS constraint,
         h.head IS NOT NULL AS printed,
         pg_catalog.substr(d.def, pg_catalog.length(h.head) + 1) AS definition
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
    JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
    JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
   CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_indexdef(i.indexrelid) AS def) d
    LEFT JOIN LATERAL (
      SELECT x.head FROM (VALUES (tn.nspname), ('pg_temp')) s(nsp)
       CROSS JOIN LATERAL (SELECT pg_catalog.format('CREATE %sINDEX %I ON %I.%I ', CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END,
                                                    c.relname, s.nsp, t.relname) AS head) x
       WHERE pg_catalog.starts_with(d.def, x.head) AND (s.nsp <> 'pg_temp' OR tn.oid = pg_catalog.pg_my_temp_schema())
       LIMIT 1) h ON true
   WHERE i.indexrelid = $1`;

/** Read an index's definition with names qualified (runs `set_config(…, true)`: call inside a transaction). */
async function readDefinition(client: Client, oid: number): Promise<(ExistingIndex & { printed: boolean }) | null> {
  const path = (await client.query<{ p: string }>(`SELECT pg_catalog.current_setting('search_path') AS p`)).rows[0]!.p;
  await client.query(`SELECT pg_catalog.set_config('search_path', '', true)`);
  try {
    const { rows } = await client.query<ExistingIndex & { printed: boolean }>(DEFINITION_SQL, [oid]);
    return rows[0] ?? null;
  } finally {
    await client.query(`SELECT pg_catalog.set_config('search_path', $1, true)`, [path]);
  }
}

/** The index `name` in the table's schema, when it is an index of `table`; a problem at `field` otherwise. */
export async function existingIndex(client: Client, table: QualifiedName, name: string, field: string): Promise<ExistingIndex | KindProblem> {
  const { rows } = await client.query<{ oid: number; table: number; own: number; partitioned: boolean }>(
    `SELECT c.oid::int AS oid, i.indrelid::int AS table, pg_catalog.to_regclass($2)::oid::int AS own, c.relkind = 'I' AS partitioned
       FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
      WHERE c.oid = pg_catalog.to_regclass($1)`,
    [qualified({ schema: table.schema, name }), qualified(table)],
  );
  const found = rows[0];
  if (!found || found.table !== found.own)
    return { path: field, message: `${display(table)} has no index "${name}" (an index lives in its table's schema, ${table.schema})` };
  const index = await readDefinition(client, found.oid);
  if (!index?.printed) return { path: field, message: `could not read the definition of index "${name}" back from PostgreSQL` };
  if (index.constraint)
    return {
      path: field,
      message: `index "${name}" backs the constraint "${index.constraint}", and DROP INDEX cannot drop it; drop or replace the constraint instead`,
    };
  return { name: index.name, unique: index.unique, definition: index.definition, constraint: null, valid: index.valid };
}

/**
 * The functions (also behind operators) and operators the index `oid`
 * binds, from pg_depend, whose owner is neither a superuser nor a member of
 * the runner: the build runs them as the runner, so whoever owns them would
 * act with its rights (the look-alike a role planted in a schema on the
 * search_path, issue 19). PostgreSQL records no dependency on its pinned
 * built-ins, so those never appear.
 */
async function untrustedOf(client: Client, oid: number): Promise<{ object: string; owner: string }[]> {
  const { rows } = await client.query<{ object: string; owner: string }>(
    `WITH refs AS (
       SELECT d.refclassid, d.refobjid FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = $1
     ), operators AS (
       SELECT o.* FROM refs JOIN pg_catalog.pg_operator o ON refs.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND o.oid = refs.refobjid
     ), functions AS (
       SELECT refs.refobjid AS oid FROM refs WHERE refs.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
       UNION ALL
       SELECT f FROM operators o, LATERAL pg_catalog.unnest(ARRAY[o.oprcode, o.oprrest, o.oprjoin]::pg_catalog.oid[]) AS f WHERE f <> 0::pg_catalog.oid
     ), objects AS (
       SELECT pg_catalog.concat('function ', n.nspname, '.', p.proname, '(', pg_catalog.pg_get_function_identity_arguments(p.oid), ')') AS object, p.proowner AS owner
         FROM functions f JOIN pg_catalog.pg_proc p ON p.oid = f.oid JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
       UNION ALL
       SELECT pg_catalog.concat('operator ', n.nspname, '.', o.oprname), o.oprowner FROM operators o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
     )
     SELECT DISTINCT o.object, r.rolname AS owner FROM objects o JOIN pg_catalog.pg_roles r ON r.oid = o.owner
      WHERE NOT r.rolsuper AND NOT pg_catalog.pg_has_role(o.owner, CURRENT_USER, 'USAGE') ORDER BY 1`,
    [oid],
  );
  return rows;
}

/**
 * Check what the plan author wrote by building it on an empty temporary
 * copy of the table's columns (`LIKE`: names, types, collations), in a
 * savepoint rolled back after: the author's columns, expression and
 * predicate are parsed and bound there, nothing of the real table is read
 * or locked. The probe is sent with the extended protocol, so a `;` in an
 * expression cannot start a second statement. What PostgreSQL printed back,
 * names qualified, is what the plan builds later, so the names the author's
 * text bound at plan start are the ones built whatever the search_path then.
 */
export async function probeDefinition(
  client: Client,
  table: QualifiedName,
  spec: { readonly unique: boolean; readonly method: string | undefined; readonly keys: string; readonly where: string | undefined },
): Promise<IndexDefinition | string> {
  try {
    return await inSavepoint(
      client,
      async () => {
        await client.query(`CREATE TEMPORARY TABLE pgshift_index_probe (LIKE ${qualified(table)}) ON COMMIT DROP`);
        const using = spec.method ? ` USING ${ident(spec.method)}` : '';
        const where = spec.where === undefined ? '' : ` WHERE ${spec.where}`;
        await client.query(
          singleStatement(`CREATE ${spec.unique ? 'UNIQUE ' : ''}INDEX pgshift_index_probe_idx ON pg_temp.pgshift_index_probe${using} (${spec.keys})${where}`),
        );
        const oid = (await client.query<{ oid: number }>(`SELECT 'pg_temp.pgshift_index_probe_idx'::pg_catalog.regclass::oid::int AS oid`)).rows[0]!.oid;
        const untrusted = await untrustedOf(client, oid);
        if (untrusted.length)
          return untrusted
            .map(
              (u) =>
                `binds ${u.object}, owned by role "${u.owner}", which is neither a superuser nor a member of the role running pgshift: ` +
                'every build of the index (and every write to the table) would run it; schema-qualify the name you mean (pg_catalog.… for a built-in)',
            )
            .join('; ');
        const index = await readDefinition(client, oid);
        if (!index?.printed) return 'PostgreSQL printed it back in a form pgshift could not read';
        return { unique: index.unique, definition: index.definition };
      },
      { undo: true },
    );
  } catch (error) {
    return `does not compile: ${(error as Error).message}`;
  }
}
