import { randomInt } from 'node:crypto';
import { outlineOf } from '../changes/kinds/registry.js';
import type { Client } from '../db/client.js';
import { ident, literal } from '../db/ident.js';
import { PlanError } from '../errors.js';
import type { Plan } from '../plan/types.js';

/** A column as `--rows` sees it. */
interface ColumnInfo {
  readonly name: string;
  /** `format_type`, the type to cast to. */
  readonly type: string;
  /** The base type's name and category (a domain's base type). */
  readonly typname: string;
  readonly category: string;
  readonly notNull: boolean;
  readonly hasDefault: boolean;
  /** Identity or generated: PostgreSQL fills it. */
  readonly automatic: boolean;
  readonly foreignKey: boolean;
}

/** The columns the plan replaces: their values must make its `using` expressions meaningful. */
export function oldColumnsOf(plan: Plan): string[] {
  return [...outlineOf(plan.change).reads];
}

/**
 * A value of a type with category `category` for row `g` (a bigint), or null
 * when there is no sensible one. Text carries a space, so a split has two
 * parts; integers count on from the column's maximum (`offset`), and text,
 * uuids, json, bytea and inet from a random base (`n` = g + base), so a key
 * or UNIQUE column holds beside rows setup or an earlier fill wrote.
 */
function synthetic(typname: string, category: string, typeSql: string, offset: string, n: string): string | null {
  switch (category) {
    case 'N':
      if (typname === 'int2') return `(g % 32000)`;
      if (['int4', 'int8', 'oid'].includes(typname)) return `(g + ${offset})`;
      return `(g + 0.5)`;
    case 'S':
      return `('w' || ${n} || ' x' || ${n})`;
    case 'B':
      return `(g % 2 = 0)`;
    case 'D':
      if (typname === 'date') return `(DATE '2000-01-01' + (g % 10000)::int)`;
      if (typname === 'time' || typname === 'timetz') return `(TIME '00:00' + (g % 86400) * INTERVAL '1 second')`;
      return `(TIMESTAMP '2000-01-01' + g * INTERVAL '1 minute')`;
    case 'T':
      return `(g * INTERVAL '1 second')`;
    case 'E':
      return `(enum_range(NULL::${typeSql}))[1 + (g % array_length(enum_range(NULL::${typeSql}), 1))::int]`;
    case 'I':
      return `('10.0.0.0'::inet + ${n} % 16000000)`;
    case 'U':
      if (typname === 'uuid') return `md5(${n}::text)::uuid`;
      if (typname === 'json' || typname === 'jsonb') return `json_build_object('n', ${n})`;
      if (typname === 'bytea') return `decode(md5(${n}::text), 'hex')`;
      return null;
    default:
      return null;
  }
}

async function columnsOf(client: Client, table: string): Promise<ColumnInfo[]> {
  const { rows } = await client.query<ColumnInfo>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            b.typname, b.typcategory AS category, a.attnotnull AS "notNull", a.atthasdef AS "hasDefault",
            (a.attidentity <> '' OR a.attgenerated <> '') AS automatic,
            EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = a.attrelid AND c.contype = 'f' AND a.attnum = ANY (c.conkey)) AS "foreignKey"
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [table],
  );
  return rows;
}

/**
 * Insert `rows` synthetic rows into the plan's table, server-side in one
 * `INSERT … SELECT … FROM generate_series`, then ANALYZE it. Every column
 * the plan replaces gets a value (a retype's column one that casts to the
 * new type); other columns with a default, identity or generated columns are
 * left to PostgreSQL; nullable foreign keys stay NULL. A NOT NULL column that
 * cannot be made up is refused with its name (fill the table in --setup).
 */
export async function fillTable(client: Client, plan: Plan, rows: number): Promise<void> {
  const tableSql = (plan.table.schema ? ident(plan.table.schema) + '.' : '') + ident(plan.table.name);
  const columns = await columnsOf(client, tableSql);
  const replaced = new Set(oldColumnsOf(plan));
  const n = `(g + ${randomInt(1_000_000_000)})`;
  const names: string[] = [];
  const values: string[] = [];
  for (const col of columns) {
    const planColumn = replaced.has(col.name);
    if (col.automatic || (col.hasDefault && !planColumn)) continue;
    const offset = `(SELECT coalesce(max(${ident(col.name)}), 0) FROM ${tableSql})`;
    let value: string | null = null;
    if (!col.foreignKey) {
      if (planColumn && plan.change.kind === 'retype') {
        const target = await client.query<{ typname: string; category: string }>(
          `SELECT typname, typcategory AS category FROM pg_type WHERE oid = to_regtype($1)`,
          [plan.change.to],
        );
        const t = target.rows[0];
        const inner = t ? synthetic(t.typname, t.category, plan.change.to, '0', n) : null;
        value = inner ? `(${inner})::${plan.change.to}` : null;
      }
      value ??= synthetic(col.typname, col.category, col.type, offset, n);
    }
    if (value === null) {
      if (col.notNull) {
        throw new PlanError(
          `--rows cannot make up values for ${tableSql}.${ident(col.name)} (${col.type}${col.foreignKey ? ', a foreign key' : ''}, NOT NULL): fill the table in --setup instead`,
        );
      }
      continue;
    }
    names.push(ident(col.name));
    values.push(`(${value})::${col.type}`);
  }
  const target = names.length ? `${tableSql} (${names.join(', ')})` : tableSql;
  await client.query(`INSERT INTO ${target} SELECT ${values.join(', ')} FROM generate_series(1, ${literal(String(rows))}::bigint) AS g`);
  await client.query(`ANALYZE ${tableSql}`);
}
