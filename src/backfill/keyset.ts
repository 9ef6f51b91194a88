import { ident, literal, qualified, type QualifiedName } from '../db/ident.js';

/** Key columns and their types, as recorded in the plan's facts. */
export type KeyColumns = readonly { readonly name: string; readonly type: string }[];

/** A key value as text, one element per key column (the checkpoint's format). */
export type KeyValue = readonly string[];

/** `ROW("k1", "k2")`: the key of the current row. */
export function keyRow(key: KeyColumns): string {
  return `ROW(${key.map((k) => ident(k.name)).join(', ')})`;
}

/** `ROW($n::t1, $n+1::t2)`: a key given as text parameters starting at `$first`. */
export function keyParams(key: KeyColumns, first: number): string {
  return `ROW(${key.map((k, i) => `$${first + i}::${k.type}`).join(', ')})`;
}

/** `"k1", "k2"` for ORDER BY, ascending or descending. */
export function keyOrder(key: KeyColumns, direction: 'ASC' | 'DESC' = 'ASC'): string {
  return key.map((k) => `${ident(k.name)} ${direction}`).join(', ');
}

/** `"k1"::text AS k0, ...`: a key read back as text. */
export function keyAsText(key: KeyColumns): string {
  return key.map((k, i) => `${ident(k.name)}::text AS k${i}`).join(', ');
}

/** The text values of a key read with `keyAsText`. */
export function readKey(row: Record<string, unknown>, key: KeyColumns): string[] {
  return key.map((_, i) => String(row[`k${i}`]));
}

/** The last key of the table now: the backfill's fixed upper bound. */
export function upperKeySql(table: QualifiedName, key: KeyColumns): string {
  return `SELECT ${keyAsText(key)} FROM ${qualified(table)} ORDER BY ${keyOrder(key, 'DESC')} LIMIT 1`;
}

/**
 * The key that ends a batch of `$n` rows after the lower key (exclusive, when
 * given) and not past the upper key (inclusive, when given). Parameters: `$1`
 * the batch size, then the lower key's values, then the upper key's. Walks
 * the key's index only; the rows themselves never leave the server.
 */
export function batchEndSql(table: QualifiedName, key: KeyColumns, hasLower: boolean, hasUpper: boolean): string {
  return batchEndStatement(table, key, rangeWhere(key, hasLower, hasUpper, 2), '$1::int8 - 1');
}

/** `batchEndSql` with the keys and the size written as literals (for a statement sent with others, without parameters). */
export function batchEndLiteralSql(table: QualifiedName, key: KeyColumns, lower: KeyValue | null, upper: KeyValue | null, size: number): string {
  return batchEndStatement(table, key, rangeWhereLiteral(key, lower, upper), String(size - 1));
}

function batchEndStatement(table: QualifiedName, key: KeyColumns, where: string, offset: string): string {
  return `SELECT ${keyAsText(key)} FROM ${qualified(table)} WHERE ${where}
           ORDER BY ${keyOrder(key)} OFFSET ${offset} LIMIT 1`;
}

/** `(key > lower) AND (key <= upper)` with parameters starting at `$first`; `true` when unbounded. */
export function rangeWhere(key: KeyColumns, hasLower: boolean, hasUpper: boolean, first: number): string {
  const parts: string[] = [];
  if (hasLower) parts.push(`${keyRow(key)} > ${keyParams(key, first)}`);
  if (hasUpper) parts.push(`${keyRow(key)} <= ${keyParams(key, first + (hasLower ? key.length : 0))}`);
  return parts.length ? parts.join(' AND ') : 'true';
}

/**
 * How many rows lie after the lower key (exclusive, when given) up to the
 * upper key (inclusive): the last, partial batch's row count. Parameters as
 * for `rangeWhere` from `$1`.
 */
export function rangeCountSql(table: QualifiedName, key: KeyColumns, hasLower: boolean): string {
  return `SELECT count(*)::float8 AS n FROM ${qualified(table)} WHERE ${rangeWhere(key, hasLower, true, 1)}`;
}

/**
 * Run `fn` (a `batchEndSql` query) with the planner steered onto the key's
 * index. The bound query must walk the index from the lower key and stop
 * after `$1` entries; with stale or missing statistics the planner may
 * instead pick a bitmap or sequential scan and sort every remaining row,
 * once per batch, which makes the whole backfill quadratic. The settings are
 * transaction-local and put back right after, so the batch's UPDATE is
 * planned freely.
 */
export async function onKeyIndex<T>(client: { query: (sql: string) => Promise<unknown> }, fn: () => Promise<T>): Promise<T> {
  const names = KEY_INDEX_SETTINGS;
  const saved = (await client.query(
    `SELECT ${names.map((n, i) => `current_setting('${n}') AS s${i}, set_config('${n}', 'off', true) AS x${i}`).join(', ')}`,
  )) as { rows: Record<string, string>[] };
  const result = await fn();
  const row = saved.rows[0]!;
  await client.query(`SELECT ${names.map((n, i) => `set_config('${n}', '${row[`s${i}`] === 'off' ? 'off' : 'on'}', true)`).join(', ')}`);
  return result;
}

/** `schema.name` of a partition, as the backfill checkpoint names it. */
export function partitionId(p: { readonly schema: string; readonly name: string }): string {
  return `${p.schema}.${p.name}`;
}

/** `ROW('v1'::t1, 'v2'::t2)`: a key given as literals (for a statement sent with others, without parameters). */
export function keyLiteral(key: KeyColumns, value: KeyValue): string {
  return `ROW(${key.map((k, i) => `${literal(value[i]!)}::${k.type}`).join(', ')})`;
}

/** `rangeWhere` with the keys written as literals. */
export function rangeWhereLiteral(key: KeyColumns, lower: KeyValue | null, upper: KeyValue | null): string {
  const parts: string[] = [];
  if (lower) parts.push(`${keyRow(key)} > ${keyLiteral(key, lower)}`);
  if (upper) parts.push(`${keyRow(key)} <= ${keyLiteral(key, upper)}`);
  return parts.length ? parts.join(' AND ') : 'true';
}

/** The planner settings `onKeyIndex` turns off around a batch-end walk. */
export const KEY_INDEX_SETTINGS = ['enable_seqscan', 'enable_bitmapscan', 'enable_sort'] as const;

/** The statement that turns `KEY_INDEX_SETTINGS` off for the rest of a transaction that does nothing else (nothing to put back). */
export function keyIndexOnlySql(): string {
  return `SELECT ${KEY_INDEX_SETTINGS.map((n) => `set_config('${n}', 'off', true)`).join(', ')}`;
}
