import type { TestDatabase } from './db.js';

/**
 * A table's definition as the catalog sees it, in a stable order: columns
 * (in attnum order, dropped ones skipped), constraints, indexes and triggers.
 * Equal descriptions mean the same table for every purpose pgshift affects.
 */
export async function describeTable(db: TestDatabase, table: string): Promise<Record<string, unknown[]>> {
  const oid = `'${table.replaceAll("'", "''")}'::regclass`;
  // One after another: the shared client runs one query at a time.
  const [columns, constraints, indexes, triggers] = await sequence([
    () =>
      db.sql(`SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
                   pg_get_expr(d.adbin, d.adrelid) AS default, a.attcollation::regcollation::text AS collation
              FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = ${oid} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`),
    () =>
      db.sql(`SELECT conname AS name, pg_get_constraintdef(oid) AS def, convalidated AS valid
              FROM pg_constraint WHERE conrelid = ${oid} ORDER BY conname`),
    () =>
      db.sql(`SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def, indisvalid AS valid
              FROM pg_index WHERE indrelid = ${oid} ORDER BY 1`),
    () => db.sql(`SELECT tgname AS name, pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgrelid = ${oid} AND NOT tgisinternal ORDER BY tgname`),
  ]);
  return { columns: columns!, constraints: constraints!, indexes: indexes!, triggers: triggers! };
}

async function sequence<T>(tasks: readonly (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = [];
  for (const task of tasks) results.push(await task());
  return results;
}

/** Every user-visible object in the database outside system schemas: to prove nothing changed. */
export async function describeDatabase(db: TestDatabase): Promise<unknown[]> {
  return db.sql(`
    SELECT n.nspname, c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull
      FROM pg_namespace n
      LEFT JOIN pg_class c ON c.relnamespace = n.oid
      LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
    UNION ALL
    SELECT n.nspname, p.proname, 'f', pg_get_function_identity_arguments(p.oid), NULL, NULL
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT NULL, tgname, 't', tgrelid::regclass::text, NULL, NULL FROM pg_trigger WHERE NOT tgisinternal
    ORDER BY 1, 2, 3, 4`);
}
