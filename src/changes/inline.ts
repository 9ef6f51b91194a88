import { singleStatement, type Client } from '../db/client.js';
import { ident } from '../db/ident.js';
import type { ColumnChange } from './model.js';
import { BODY_TAG } from './sql-objects.js';

/**
 * The change's expressions as PostgreSQL itself printed them, every name
 * outside pg_catalog schema-qualified, captured at plan start. The trigger
 * body is built from them so it calls no function of pgshift's and needs no
 * `SET search_path`: any role that may write the table can run it, at the
 * cost of the expressions alone, and what each name means was fixed when the
 * plan started, whatever a session's search_path says later.
 */
export interface InlinedExpressions {
  /** Block label the printed expressions may qualify their parameters with (`<label>.<column>`). */
  readonly label: string;
  /** Parameter type of each old column (forward expressions' variables), as printed with an empty search_path. */
  readonly oldTypes: readonly string[];
  /** Parameter type of each new column, by `exprName` (reverse expressions' variables). */
  readonly newTypes: readonly string[];
  /** One expression per new column, over variables named after the old columns. */
  readonly forward: readonly string[];
  /** One expression per old column, over variables named after the new columns' `exprName`. */
  readonly reverse: readonly string[];
  /** The old columns' defaults (two-way-defaults mode), or null. */
  readonly oldDefaults: readonly (string | null)[];
}

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
export async function inlineExpressions(client: Client, change: ColumnChange, searchPath: string, serverVersion: number): Promise<InlinedExpressions | undefined> {
  if (serverVersion < 140000) return undefined;
  const oldNames = change.old.map((c) => c.name);
  const newNames = change.new.map((c) => c.exprName ?? c.name);
  if ([...oldNames, ...newNames].some((n) => TRIGGER_NAMES.has(n.toLowerCase()) || n.toLowerCase().startsWith('tg_'))) return undefined;

  const print = async (params: readonly { name: string; type: string }[], expr: string, type: string): Promise<{ body: string; types: string[] }> => {
    const fn = `pg_temp.${INLINE_LABEL}`;
    await client.query(`SELECT set_config('search_path', $1, true)`, [searchPath]);
    await client.query(`DROP FUNCTION IF EXISTS ${fn}(${params.map((p) => p.type).join(', ')})`);
    await client.query(
      singleStatement(`CREATE FUNCTION ${fn}(${params.map((p) => `${ident(p.name)} ${p.type}`).join(', ')}) RETURNS ${type} LANGUAGE sql RETURN (${expr})::${type}`),
    );
    const oid = (await client.query<{ oid: number }>(`SELECT $1::regprocedure::oid AS oid`, [`${fn}(${params.map((p) => p.type).join(', ')})`])).rows[0]!.oid;
    await client.query(`SELECT set_config('search_path', '', true)`);
    const { rows } = await client.query<{ body: string; types: string[] }>(
      `SELECT pg_get_function_sqlbody(p.oid) AS body,
              ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, n) ORDER BY n) AS types
         FROM pg_proc p WHERE p.oid = $1`,
      [oid],
    );
    await client.query(`DROP FUNCTION ${fn}(${params.map((p) => p.type).join(', ')})`);
    await client.query(`SELECT set_config('search_path', $1, true)`, [searchPath]);
    const body = rows[0]!.body.trim();
    if (!body.startsWith('RETURN ')) throw new Error(`unexpected function body from the server: ${body.slice(0, 40)}`);
    return { body: body.slice('RETURN '.length).replace(/;$/, ''), types: rows[0]!.types };
  };

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
  const all = [...forward, ...reverse, ...oldDefaults.filter((d): d is string => d !== null)];
  // The trigger body is dollar-quoted with this tag: printed text must not end it.
  if (all.some((e) => e.includes(BODY_TAG))) return undefined;
  return { label: INLINE_LABEL, oldTypes, newTypes, forward, reverse, oldDefaults };
}
