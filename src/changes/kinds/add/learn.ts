import { inSavepoint, singleStatement } from '../../../db/client.js';
import { ident, literal, qualified } from '../../../db/ident.js';
import { INLINE_LABEL, overNew, printBound } from '../../inline.js';
import type { InlinedExpressions } from '../../model.js';
import { BODY_TAG } from '../../sql-objects.js';
import type { KindCatalog, KindProblem } from '../kind.js';

/** What an `add` learns at plan start, kept in the plan's facts under `add` (and its printed value under `inline`). */
export interface AddFacts {
  readonly add: {
    /** The table's columns the value reads, in column order, with their types printed with an empty search_path: the forward function's parameters. */
    readonly reads: readonly { readonly name: string; readonly type: string }[];
  };
  /** The value as PostgreSQL printed it at start, bound: the forward function's body and the trigger's assignment. */
  readonly inline: InlinedExpressions;
}

/**
 * Learn which columns the value reads and print it bound, in the caller's
 * transaction (rolled back). The columns are the ones PostgreSQL records a
 * dependency on when a (temporary) view selects the value from the table:
 * the parser's own answer, a lookup in another table's columns not counted.
 */
export async function learnAdd(
  column: string,
  value: string,
  defaultValue: string | undefined,
  { client, table, tableFacts, newType }: KindCatalog,
): Promise<{ readonly problems: readonly KindProblem[]; readonly facts: AddFacts }> {
  // A plan with problems does not start, so its facts are never read.
  const refuse = (path: string, message: string) => ({ problems: [{ path, message }], facts: {} as AddFacts });
  const { rows: server } = await client.query<{ v: number; p: string; kind: string }>(
    `SELECT pg_catalog.current_setting('server_version_num')::int AS v, pg_catalog.current_setting('search_path') AS p,
            (SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = $1) AS kind`,
    [tableFacts.oid],
  );
  const { v: version, p: searchPath, kind } = server[0]!;
  if (version < 140000) return refuse('add', 'add needs PostgreSQL 14 or later (its value is bound into a SQL-standard function body)');
  if (kind === 'p') return refuse('add', `${qualified(table)} is partitioned; add does not support partitioned tables yet`);
  if (defaultValue !== undefined) {
    // A default may not read the row: PostgreSQL says so when a column is declared with it.
    const refused = await inSavepoint(
      client,
      async () => {
        await client.query(singleStatement(`CREATE TEMPORARY TABLE ${INLINE_LABEL}_default (x ${newType} DEFAULT (${defaultValue})) ON COMMIT DROP`));
        return null;
      },
      { undo: true },
    ).catch((error: unknown) => (error as Error).message);
    if (refused !== null) return refuse('add.default', `is not a valid default for ${ident(column)}: ${refused}`);
  }
  // pgshift's printing names its helpers so; a value naming them could not be read back exactly.
  if (value.toLowerCase().includes(INLINE_LABEL)) return refuse('add.value', `must not contain ${INLINE_LABEL}`);
  const view = `${INLINE_LABEL}_reads`;
  const reads = await inSavepoint(
    client,
    async () => {
      await client.query(singleStatement(`CREATE TEMPORARY VIEW ${view} AS SELECT (${value})::${newType} AS v FROM ${qualified(table)}`));
      await client.query(`SELECT pg_catalog.set_config('search_path', '', true)`);
      const { rows } = await client.query<{ name: string; type: string }>(
        `SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, NULL) AS type
           FROM pg_catalog.pg_depend d
           JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
           JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
          WHERE r.ev_class = pg_catalog.to_regclass(${literal(`pg_temp.${view}`)})
            AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1 AND d.refobjsubid > 0
          GROUP BY a.attnum, a.attname, a.atttypid ORDER BY a.attnum`,
        [tableFacts.oid],
      );
      await client.query(`SELECT pg_catalog.set_config('search_path', $1, true)`, [searchPath]);
      return rows;
    },
    { undo: true },
  ).catch((error: unknown) => (error as Error).message);
  if (typeof reads === 'string') return refuse('add.value', `does not compile over ${qualified(table)}: ${reads}`);
  if (reads.some((r) => r.name === column)) return refuse('add.value', `reads "${column}", the column it fills`);
  const bound = await printBound(client, searchPath, reads, value, newType);
  const onNew = await overNew(client, searchPath, reads, value, newType);
  if (onNew === undefined || [bound.body, onNew].some((e) => e.includes(BODY_TAG)))
    return refuse(
      'add.value',
      `PostgreSQL's printed text of the value could not be read back exactly; write it more simply (without ${ident(INLINE_LABEL)} names)`,
    );
  return {
    problems: [],
    facts: {
      add: { reads: reads.map((r, i) => ({ name: r.name, type: bound.types[i] ?? r.type })) },
      inline: {
        label: INLINE_LABEL,
        oldTypes: bound.types,
        newTypes: [await printedType(client, newType)],
        forward: [bound.body],
        reverse: [],
        oldDefaults: [],
        forwardOnNew: [onNew],
        perEvent: false,
        bound: true,
      },
    },
  };
}

/** A type name as printed with an empty search_path (qualified unless in pg_catalog), for the function's RETURNS under the fixed path. */
async function printedType(client: KindCatalog['client'], type: string): Promise<string> {
  const oid = (await client.query<{ oid: number }>(`SELECT $1::regtype::oid::int8::float8 AS oid`, [type])).rows[0]!.oid;
  const { rows: path } = await client.query<{ p: string }>(`SELECT pg_catalog.current_setting('search_path') AS p`);
  await client.query(`SELECT pg_catalog.set_config('search_path', '', true)`);
  const { rows } = await client.query<{ t: string }>(`SELECT pg_catalog.format_type($1::pg_catalog.oid, NULL) AS t`, [oid]);
  await client.query(`SELECT pg_catalog.set_config('search_path', $1, true)`, [path[0]!.p]);
  return rows[0]!.t;
}
