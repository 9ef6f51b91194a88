import type { Client } from './client.js';
import { ident, type QualifiedName } from './ident.js';

/** What pgshift needs to know about one column, read from pg_attribute. */
export interface ColumnFacts {
  readonly name: string;
  /** `format_type(atttypid, atttypmod)`, e.g. `numeric(10,2)`. */
  readonly type: string;
  readonly notNull: boolean;
  /** `pg_get_expr` of the default, or null. */
  readonly default: string | null;
  /** Non-default collation, quoted and qualified, or null. */
  readonly collation: string | null;
  readonly identity: boolean;
  readonly generated: boolean;
}

/** The table a plan changes, as the catalog sees it when the plan starts. */
export interface TableFacts {
  readonly oid: number;
  readonly table: QualifiedName;
  readonly columns: readonly ColumnFacts[];
  /** Primary key columns in order, or null. */
  readonly primaryKey: readonly string[] | null;
  /** `reltuples`, or -1 when never analyzed. */
  readonly estimatedRows: number;
}

/** Resolve a table name the way PostgreSQL would (search_path when unqualified); null if absent. */
export async function resolveTable(client: Client, table: { schema?: string | undefined; name: string }): Promise<QualifiedName | null> {
  const text = table.schema ? `${ident(table.schema)}.${ident(table.name)}` : ident(table.name);
  const { rows } = await client.query<{ schema: string; name: string; relkind: string }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = pg_catalog.to_regclass($1)`,
    [text],
  );
  const row = rows[0];
  if (!row || !['r', 'p'].includes(row.relkind)) return null;
  return { schema: row.schema, name: row.name };
}

/** Read the facts of a table that exists. */
export async function readTableFacts(client: Client, table: QualifiedName): Promise<TableFacts> {
  const oidRow = await client.query<{ oid: number; reltuples: number }>(
    `SELECT c.oid::int8::float8 AS oid, c.reltuples::float8 AS reltuples
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  );
  const rel = oidRow.rows[0];
  if (!rel) throw new Error(`table ${table.schema}.${table.name} does not exist`);
  const cols = await client.query<ColumnFacts>(
    `SELECT a.attname AS name,
            format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AS "notNull",
            pg_get_expr(d.adbin, d.adrelid) AS "default",
            CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                 THEN pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) END AS collation,
            a.attidentity <> '' AS identity,
            a.attgenerated <> '' AS generated
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.attgenerated = ''
       LEFT JOIN pg_collation co ON co.oid = a.attcollation
       LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [rel.oid],
  );
  const pk = await client.query<{ cols: string[] }>(
    `SELECT array_agg(a.attname::text ORDER BY k.ord) AS cols
       FROM pg_index i
       CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1 AND i.indisprimary
      GROUP BY i.indexrelid`,
    [rel.oid],
  );
  return {
    oid: rel.oid,
    table,
    columns: cols.rows,
    primaryKey: pk.rows[0]?.cols ?? null,
    estimatedRows: rel.reltuples,
  };
}

/**
 * True when `columns` are NOT NULL and covered by a valid, non-partial unique
 * index whose columns are exactly these (in any order): a keyset can walk them.
 */
export async function isUniqueKey(client: Client, tableOid: number, columns: readonly string[]): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_index i
        WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
          AND i.indexprs IS NULL
          AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
                 FROM pg_attribute a
                WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey))
              = (SELECT array_agg(c ORDER BY c) FROM unnest($2::text[]) AS c)
          AND i.indnkeyatts = cardinality($2::text[])
     ) AS ok`,
    [tableOid, columns],
  );
  return rows[0]?.ok ?? false;
}

/** The column named `name`, or undefined. */
export function column(facts: TableFacts, name: string): ColumnFacts | undefined {
  return facts.columns.find((c) => c.name === name);
}
