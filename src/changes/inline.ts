import { singleStatement, type Client } from '../db/client.js';
import { ident } from '../db/ident.js';
import type { ColumnChange, InlinedExpressions } from './model.js';

export type { InlinedExpressions } from './model.js';
import { BODY_TAG } from './sql-objects.js';

/** The label of the blocks whose variables stand for the parameters; also the temporary function's name. */
export const INLINE_LABEL = 'pgshift_expr';

/**
 * Names a trigger variable must not take: the trigger's own variables. A
 * column with one of these names keeps the older form, where the trigger
 * calls the expression functions (see docs/trigger.md).
 */
const TRIGGER_NAMES = new Set(['new', 'old', 'found', 'sqlstate', 'sqlerrm', INLINE_LABEL]);

/**
 * Let PostgreSQL print each expression with every name bound and qualified:
 * each becomes the body of a temporary SQL-standard function (`RETURN …`,
 * PostgreSQL 14+), created with the plan's search_path, so its names are
 * bound at creation; `pg_get_function_sqlbody` then prints it with an empty
 * search_path, which qualifies every object that is not in pg_catalog (the
 * schema PostgreSQL searches first unless a session names it later). Runs in
 * the caller's transaction, which the caller rolls back. Undefined when the
 * server is older than 14 or a column name would shadow a trigger variable.
 */
export async function inlineExpressions(
  client: Client,
  change: ColumnChange,
  searchPath: string,
  serverVersion: number,
): Promise<InlinedExpressions | undefined> {
  if (serverVersion < 140000) return undefined;
  const oldNames = change.old.map((c) => c.name);
  const newNames = change.new.map((c) => c.exprName ?? c.name);
  if ([...oldNames, ...newNames].some((n) => TRIGGER_NAMES.has(n.toLowerCase()) || n.toLowerCase().startsWith('tg_'))) return undefined;

  const print = (params: readonly { name: string; type: string }[], expr: string, type: string): Promise<PrintedBody> =>
    printBound(client, searchPath, params, expr, type);

  const oldParams = change.old.map((c) => ({ name: c.name, type: c.type }));
  const newParams = change.new.map((c) => ({ name: c.exprName ?? c.name, type: c.type }));
  const forward: string[] = [];
  const reverse: string[] = [];
  const oldDefaults: (string | null)[] = [];
  let oldTypes: string[] = [];
  let newTypes: string[] = [];
  for (const c of change.new) {
    const printed = await print(oldParams, c.forward, c.type);
    forward.push(printed.body);
    oldTypes = printed.types;
  }
  for (const c of change.old) {
    const printed = await print(newParams, c.reverse, c.type);
    reverse.push(printed.body);
    newTypes = printed.types;
    oldDefaults.push(c.default === null ? null : (await print([], c.default, c.type)).body);
  }
  const forwardOnNew = await allOverNew(
    client,
    searchPath,
    oldParams,
    change.new.map((c) => ({ expr: c.forward, type: c.type })),
  );
  const reverseOnNew = change.new.every((c) => (c.exprName ?? c.name) === c.name)
    ? await allOverNew(
        client,
        searchPath,
        newParams,
        change.old.map((c) => ({ expr: c.reverse, type: c.type })),
      )
    : undefined;
  const all = [...forward, ...reverse, ...oldDefaults.filter((d): d is string => d !== null), ...(forwardOnNew ?? []), ...(reverseOnNew ?? [])];
  // The trigger body is dollar-quoted with this tag: printed text must not end it.
  if (all.some((e) => e.includes(BODY_TAG))) return undefined;
  return { label: INLINE_LABEL, oldTypes, newTypes, forward, reverse, oldDefaults, forwardOnNew, reverseOnNew, perEvent: true, bound: true };
}

/** A bound expression as {@link printBound} gives it: the body after `RETURN`, and the parameters' types as printed. */
export interface PrintedBody {
  readonly body: string;
  readonly types: string[];
}

/**
 * One expression over `params` as PostgreSQL prints it bound: the body of a
 * temporary SQL-standard function created under `searchPath`, printed with
 * an empty search_path (every name outside pg_catalog qualified), with its
 * parameters' types printed the same way. Runs in the caller's transaction,
 * which the caller rolls back (see {@link inlineExpressions}).
 */
export async function printBound(
  client: Client,
  searchPath: string,
  params: readonly { name: string; type: string }[],
  expr: string,
  type: string,
): Promise<PrintedBody> {
  const fn = `pg_temp.${INLINE_LABEL}`;
  await client.query(`SELECT pg_catalog.set_config('search_path', $1, true)`, [searchPath]);
  await client.query(`DROP FUNCTION IF EXISTS ${fn}(${params.map((p) => p.type).join(', ')})`);
  await client.query(
    singleStatement(
      `CREATE FUNCTION ${fn}(${params.map((p) => `${ident(p.name)} ${p.type}`).join(', ')}) RETURNS ${type} LANGUAGE sql RETURN (${expr})::${type}`,
    ),
  );
  const oid = (await client.query<{ oid: number }>(`SELECT $1::regprocedure::oid AS oid`, [`${fn}(${params.map((p) => p.type).join(', ')})`])).rows[0]!.oid;
  await client.query(`SELECT pg_catalog.set_config('search_path', '', true)`);
  const { rows } = await client.query<{ body: string; types: string[] }>(
    `SELECT pg_get_function_sqlbody(p.oid) AS body,
            ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, n) ORDER BY n) AS types
       FROM pg_proc p WHERE p.oid = $1`,
    [oid],
  );
  await client.query(`DROP FUNCTION ${fn}(${params.map((p) => p.type).join(', ')})`);
  await client.query(`SELECT pg_catalog.set_config('search_path', $1, true)`, [searchPath]);
  const body = rows[0]!.body.trim();
  if (!body.startsWith('RETURN ')) throw new Error(`unexpected function body from the server: ${body.slice(0, 40)}`);
  return { body: body.slice('RETURN '.length).replace(/;$/, ''), types: rows[0]!.types };
}

/** {@link overNew} for each expression; undefined unless every one could be printed. */
async function allOverNew(
  client: Client,
  searchPath: string,
  params: readonly { name: string; type: string }[],
  exprs: readonly { expr: string; type: string }[],
): Promise<string[] | undefined> {
  const printed: string[] = [];
  for (const { expr, type } of exprs) {
    const text = await overNew(client, searchPath, params, expr, type);
    if (text === undefined) return undefined;
    printed.push(text);
  }
  return printed;
}

/**
 * One expression as PostgreSQL prints it over the trigger's NEW record: the
 * select list of a temporary view reading a one-row subquery whose columns
 * are `params`, next to a second, empty one so that every column is printed
 * qualified by the subquery's alias. That alias is pgshift's own name (a
 * view of PostgreSQL 15 and older already has range entries called `new`
 * and `old`, which would rename it), swapped for `new.` afterwards: the
 * expression is refused when its own text has the name, so every occurrence
 * is one PostgreSQL printed. Printed with an empty search_path as in
 * {@link inlineExpressions}. The text is cut out of the view's definition and
 * accepted only when a view built from it prints exactly the same (so a
 * misread cut is never used). Runs in the caller's transaction, which the
 * caller rolls back.
 */
export async function overNew(
  client: Client,
  searchPath: string,
  params: readonly { name: string; type: string }[],
  expr: string,
  type: string,
): Promise<string | undefined> {
  const view = `${INLINE_LABEL}_new`;
  const row = `${INLINE_LABEL}_row`;
  if (expr.toLowerCase().includes(row)) return undefined;
  const suffix = ` AS ${INLINE_LABEL}\n   FROM `;
  const print = async (select: string): Promise<string> => {
    await client.query(`SELECT pg_catalog.set_config('search_path', $1, true)`, [searchPath]);
    await client.query(`DROP VIEW IF EXISTS pg_temp.${view}`);
    await client.query(
      singleStatement(
        `CREATE TEMPORARY VIEW ${view} AS SELECT ${select} AS ${INLINE_LABEL} ` +
          `FROM (SELECT ${params.map((p) => `NULL::${p.type} AS ${ident(p.name)}`).join(', ')}) AS ${row}, (SELECT) AS ${INLINE_LABEL}_none`,
      ),
    );
    await client.query(`SELECT pg_catalog.set_config('search_path', '', true)`);
    const { rows } = await client.query<{ def: string }>(`SELECT pg_get_viewdef(to_regclass($1)) AS def`, [`pg_temp.${view}`]);
    await client.query(`DROP VIEW pg_temp.${view}`);
    await client.query(`SELECT pg_catalog.set_config('search_path', $1, true)`, [searchPath]);
    return rows[0]!.def;
  };
  const def = await print(`(${expr})::${type}`);
  const start = def.indexOf('SELECT ');
  const end = def.lastIndexOf(suffix);
  if (start < 0 || end < start) return undefined;
  const text = def.slice(start + 'SELECT '.length, end);
  // A cut that is not an expression fails to print: the savepoint keeps the caller's transaction usable.
  await client.query(`SAVEPOINT ${INLINE_LABEL}`);
  let same: boolean;
  try {
    same = (await print(text)) === def;
    await client.query(`RELEASE SAVEPOINT ${INLINE_LABEL}`);
  } catch {
    await client.query(`ROLLBACK TO SAVEPOINT ${INLINE_LABEL}`);
    return undefined;
  }
  if (!same) return undefined;
  return text.replaceAll(`${row}.`, 'new.');
}
