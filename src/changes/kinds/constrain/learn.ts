import { singleStatement } from '../../../db/client.js';
import { display, ident, literal, qualified } from '../../../db/ident.js';
import { inlineExpressions } from '../../inline.js';
import type { ColumnChange } from '../../model.js';
import { SAFE_SEARCH_PATH } from '../../sql-objects.js';
import type { KindCatalog, KindProblem } from '../kind.js';
import { violates } from './program.js';
import { parseReference, type ConstrainFacts, type ConstrainSpec, type Reference } from './spec.js';

/** How many violating rows' keys lint names. */
const SAMPLE_ROWS = 5;

/**
 * What a constrain needs from the catalog at plan start, in the shared
 * check's transaction (rolled back): its expressions as PostgreSQL prints
 * them with every name bound and qualified (so the trigger and the batches
 * run under `search_path = pg_catalog, pg_temp`), the referenced column of a
 * foreign key, and, without a `fix`, the rows that would violate (refused
 * with their count and first keys: nothing would fix them).
 */
export async function learnConstrain(change: ConstrainSpec, catalog: KindCatalog): Promise<{ problems: KindProblem[]; facts: ConstrainFacts }> {
  const { client, table, tableFacts } = catalog;
  const problems: KindProblem[] = [];
  const column = tableFacts.columns.find((c) => c.name === change.column)!;
  const empty: ConstrainFacts = { constrain: { fix: null, check: null, checkDefinition: null, references: null } };
  if (change.not_null && column.notNull) problems.push({ path: 'constrain.not_null', message: `column "${change.column}" is NOT NULL already` });
  if (change.not_null && change.fix !== undefined && /^\s*null\s*$/i.test(change.fix))
    problems.push({ path: 'constrain.fix', message: `NULL cannot fix a NOT NULL column; give a value, e.g. coalesce(${change.column}, '')` });

  let references: Reference | null = null;
  if (change.foreign_key) {
    references = parseReference(change.foreign_key.references);
    const found = await referencedColumn(catalog, references);
    if (found) problems.push({ path: 'constrain.foreign_key.references', message: found });
  }
  if (problems.length) return { problems, facts: empty };

  const searchPath = (await client.query<{ p: string }>(`SELECT pg_catalog.current_setting('search_path') AS p`)).rows[0]!.p;
  const exprs: ColumnChange = {
    old: tableFacts.columns.map((c) => ({ name: c.name, type: c.type, notNull: false, default: null, reverse: 'NULL' })),
    new: [
      ...(change.fix !== undefined ? [{ name: 'pgshift_fix', forward: change.fix, type: column.type }] : []),
      ...(change.check !== undefined ? [{ name: 'pgshift_check', forward: change.check, type: 'boolean' }] : []),
    ].map((c) => ({ ...c, collation: null, notNull: false, default: null, defaultFrom: 'expand' as const, unique: false })),
  };
  const printed = exprs.new.length ? (await inlineExpressions(client, exprs, searchPath, await serverVersion(catalog)))?.forwardOnNew : [];
  if (!printed) {
    problems.push({
      path: 'constrain',
      message:
        'PostgreSQL could not print fix and check over the row (a column named like a trigger variable: new, old, tg_…?); pgshift needs them printed to run them under a fixed search_path',
    });
    return { problems, facts: empty };
  }
  const fix = change.fix !== undefined ? printed[0]! : null;
  const check = change.check !== undefined ? printed.at(-1)! : null;
  const checkDefinition = change.check !== undefined ? await printCheck(catalog, change.check, searchPath) : null;
  const facts: ConstrainFacts = { constrain: { fix, check, checkDefinition, references } };

  if (change.fix === undefined) {
    const found = await violatingRows(catalog, change, facts);
    if (found.count > 0)
      problems.push({
        path: 'constrain.fix',
        message:
          `${found.count} row(s) of ${display(table)} would violate the constraint, e.g. ${found.keys.join('; ')}; ` +
          `give constrain.fix, the value such a row should get (the trigger gives it to old code's writes, the backfill to existing rows), or fix them first`,
      });
  }
  return { problems, facts };
}

async function serverVersion(catalog: KindCatalog): Promise<number> {
  const { rows } = await catalog.client.query<{ v: string }>(`SELECT pg_catalog.current_setting('server_version_num') AS v`);
  return Number(rows[0]!.v);
}

/** Why the referenced column cannot take a foreign key, or null when it can (it exists and a unique index covers it alone). */
async function referencedColumn({ client }: KindCatalog, ref: Reference): Promise<string | null> {
  const { rows } = await client.query<{ rel: boolean; att: boolean; uniq: boolean }>(
    `SELECT c.oid IS NOT NULL AS rel,
            EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $2 AND NOT a.attisdropped) AS att,
            EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                     WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indnkeyatts = 1 AND a.attname = $2) AS uniq
       FROM (SELECT pg_catalog.to_regclass($1) AS oid) c`,
    [qualified(ref.table), ref.column],
  );
  const r = rows[0]!;
  if (!r.rel) return `table ${display(ref.table)} does not exist`;
  if (!r.att) return `column "${ref.column}" does not exist in ${display(ref.table)}`;
  if (!r.uniq) return `${display(ref.table)}(${ref.column}) has no unique index or primary key of its own; a foreign key must reference one`;
  return null;
}

/**
 * The CHECK as PostgreSQL prints it with an empty search_path (every name
 * outside pg_catalog qualified), from a constraint made under the plan's
 * search_path on an empty temporary copy of the table's columns.
 */
async function printCheck({ client, table }: KindCatalog, check: string, searchPath: string): Promise<string> {
  const probe = 'pg_temp.pgshift_check_probe';
  await client.query(`SELECT pg_catalog.set_config('search_path', $1, true)`, [searchPath]);
  await client.query(`DROP TABLE IF EXISTS ${probe}`);
  await client.query(`CREATE TEMPORARY TABLE pgshift_check_probe (LIKE ${qualified(table)})`);
  await client.query(singleStatement(`ALTER TABLE ${probe} ADD CONSTRAINT pgshift_check CHECK (${check})`));
  await client.query(`SELECT pg_catalog.set_config('search_path', '', true)`);
  const { rows } = await client.query<{ def: string }>(
    `SELECT pg_catalog.pg_get_constraintdef(oid) AS def FROM pg_catalog.pg_constraint WHERE conrelid = ${literal(probe)}::pg_catalog.regclass AND conname = 'pgshift_check'`,
  );
  await client.query(`DROP TABLE ${probe}`);
  await client.query(`SELECT pg_catalog.set_config('search_path', $1, true)`, [searchPath]);
  return rows[0]!.def;
}

/** How many rows would violate, and the first few keys (primary key, else ctid), read under the fixed search_path. */
async function violatingRows(
  { client, table, tableFacts }: KindCatalog,
  change: ConstrainSpec,
  facts: ConstrainFacts,
): Promise<{ count: number; keys: string[] }> {
  const pk = tableFacts.primaryKey?.length ? tableFacts.primaryKey : null;
  const order = pk ? pk.map((k) => `new.${ident(k)}`).join(', ') : 'new.ctid';
  const key = pk ? pk.map((k) => `${literal(`${k} = `)} || (new.${ident(k)})::text`).join(` || ', ' || `) : `'ctid = ' || new.ctid::text`;
  const from = `FROM ${qualified(table)} AS new WHERE ${violates(change, facts.constrain)}`;
  await client.query(`SELECT pg_catalog.set_config('search_path', ${literal(SAFE_SEARCH_PATH)}, true)`);
  const count = (await client.query<{ n: number }>(`SELECT count(*)::float8 AS n ${from}`)).rows[0]!.n;
  const keys = count ? (await client.query<{ k: string }>(`SELECT ${key} AS k ${from} ORDER BY ${order} LIMIT ${SAMPLE_ROWS}`)).rows.map((r) => r.k) : [];
  return { count, keys };
}
