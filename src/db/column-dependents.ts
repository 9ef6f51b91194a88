import type { Client } from './client.js';

/** What `scanColumnDependents` found. */
export interface ColumnDependents {
  /** Dependent objects no kind can carry, described by `pg_describe_object`, each with why and what to do. */
  readonly unsupported: string[];
  /** Oids of the views and materialized views whose query reads the column. */
  readonly views: number[];
}

/**
 * The generic dependency scan of one column, from `pg_depend`: every object
 * that depends on it, sorted into what a plan may go ahead with (indexes,
 * owned sequences, CHECK, UNIQUE and FOREIGN KEY constraints, which the
 * caller reads in detail), views and materialized views (redefined or
 * refused by the kind), and what no kind can carry (rules, the primary key,
 * exclusion constraints, policies, triggers naming the column, statistics
 * objects), each said with the way out. Catalog reads only.
 */
export async function scanColumnDependents(client: Client, t: string, attnum: number): Promise<ColumnDependents> {
  const unsupported: string[] = [];
  const views = new Set<number>();
  const deps = await client.query<{ what: string; kind: string; contype: string | null; own: boolean; view: number | null; on: string | null }>(
    `SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS what, d.classid::regclass::text AS kind,
            con.contype::text AS contype, coalesce(ad.adnum = $2, false) AS own,
            CASE WHEN rw.rulename = '_RETURN' AND vc.relkind IN ('v', 'm') THEN vc.oid::int8::float8 END AS view,
            rw.ev_class::regclass::text AS on
       FROM pg_depend d
       LEFT JOIN pg_constraint con ON d.classid = 'pg_constraint'::regclass AND con.oid = d.objid
       LEFT JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND ad.oid = d.objid
       LEFT JOIN pg_rewrite rw ON d.classid = 'pg_rewrite'::regclass AND rw.oid = d.objid
       LEFT JOIN pg_class vc ON vc.oid = rw.ev_class
      WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass AND d.refobjsubid = $2
        AND d.deptype IN ('n', 'a')`,
    [t, attnum],
  );
  for (const d of deps.rows) {
    if (d.kind === 'pg_class' || (d.kind === 'pg_attrdef' && d.own)) continue; // indexes and owned sequences: below
    if (d.kind === 'pg_constraint' && d.contype && 'cfun'.includes(d.contype)) continue;
    if (d.view !== null) {
      views.add(d.view);
      continue;
    }
    if (d.kind === 'pg_rewrite')
      unsupported.push(
        `${d.what} (a rule, not a view): pgshift cannot rewrite rules; replace it by a trigger on ${d.on} first (CREATE TRIGGER, then DROP RULE, each a short catalog change), then run the plan`,
      );
    else if (d.kind === 'pg_constraint' && d.contype === 'p') unsupported.push(`${d.what}: the column is part of the primary key`);
    else if (d.kind === 'pg_constraint' && d.contype === 'x') unsupported.push(`${d.what}: exclusion constraints are not carried`);
    else unsupported.push(`${d.what}: pgshift cannot carry it to the new column`);
  }

  return { unsupported, views: [...views] };
}
