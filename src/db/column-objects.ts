import type { Client } from './client.js';
import { scanColumnDependents } from './column-dependents.js';
import { ident, qualified, type QualifiedName } from './ident.js';

/** An index that uses the column, its definition rewritten onto the new name. */
export interface ColumnIndex {
  readonly name: string;
  readonly unique: boolean;
  /** Everything after `ON <table>`: `USING btree ("username" …) … WHERE …`. */
  readonly definition: string;
  /** Set when the index backs a UNIQUE constraint of the same name. */
  readonly constraint: { readonly deferrable: 'no' | 'immediate' | 'deferred' } | null;
  /**
   * For a UNIQUE constraint's index: the constraint as `UNIQUE (…) …`, without
   * deferrability (a partitioned table cannot adopt an index as a constraint,
   * so its copy is added from this).
   */
  readonly constraintDefinition?: string | undefined;
}

/** A CHECK or FOREIGN KEY constraint that uses the column, rewritten onto the new name. */
export interface ColumnConstraint {
  readonly kind: 'check' | 'foreign-key';
  /** The table the constraint is on: the renamed table, or one referencing it. */
  readonly table: QualifiedName;
  readonly name: string;
  /** `CHECK (…)` or `FOREIGN KEY (…) REFERENCES …`, without NOT VALID. */
  readonly definition: string;
  readonly validated: boolean;
  /** Foreign keys: `from` the column to another key, or `to` it from a referencing column. */
  readonly direction?: 'from' | 'to' | undefined;
  /** Foreign keys: the referenced table (absent in plans started before it was recorded: read from `definition`). */
  readonly references?: QualifiedName | undefined;
}

/**
 * The tables a foreign key's constraint changes lock: its own table and the
 * referenced one (its triggers live on both). One table for a CHECK.
 */
export function constraintTables(c: Pick<ColumnConstraint, 'kind' | 'table' | 'definition' | 'references'>): QualifiedName[] {
  if (c.kind !== 'foreign-key') return [c.table];
  const parsed = /REFERENCES ("(?:[^"]|"")*")\.("(?:[^"]|"")*")/.exec(c.definition);
  const unquote = (q: string): string => q.slice(1, -1).replaceAll('""', '"');
  const references = c.references ?? (parsed ? { schema: unquote(parsed[1]!), name: unquote(parsed[2]!) } : undefined);
  return references ? [c.table, references] : [c.table];
}

/** What depends on one column, read from the catalog. */
export interface ColumnObjects {
  readonly indexes: readonly ColumnIndex[];
  readonly constraints: readonly ColumnConstraint[];
  /** Sequences OWNED BY the column (serial): they would be dropped with it. */
  readonly ownedSequences: readonly QualifiedName[];
  readonly comment: string | null;
  /** Dependent objects this version cannot carry, described by `pg_describe_object`, each with why. */
  readonly unsupported: readonly string[];
  /** Oids of the views and materialized views whose query reads the column (redefined by the plan, see dependent-views). */
  readonly views?: readonly number[] | undefined;
}

/**
 * What depends on `column` of `table`: the generic scan (column-dependents.ts:
 * what no kind can carry, the views reading it), then every index and
 * constraint that uses it, with their definitions rewritten to use `newName`
 * instead, as a rename carries them (for other kinds `newName` is the column
 * itself and the definitions only name what contract would drop). Nothing is rewritten as
 * text: expressions and predicates are stored as node trees that name
 * columns by number, so they are deparsed by `pg_get_expr` against a
 * temporary table whose columns have the same numbers and the new name at
 * the column's place. Plain key columns, operator classes, collations,
 * orderings, INCLUDE columns, storage options and tablespaces are read from
 * `pg_index` one by one. Must run inside a transaction the caller rolls back
 * (the temporary table is made in it).
 */
export async function readColumnObjects(client: Client, table: QualifiedName, column: string, newName: string): Promise<ColumnObjects> {
  const t = qualified(table);
  const attrs = await client.query<{ attnum: number; attname: string; dropped: boolean }>(
    `SELECT attnum, attname, attisdropped AS dropped FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 ORDER BY attnum`,
    [t],
  );
  const attnum = attrs.rows.find((a) => a.attname === column && !a.dropped)?.attnum;
  if (attnum === undefined) throw new Error(`column ${column} of ${t} does not exist`);
  const names = await namesTable(client, attrs.rows, attnum, newName);
  const nameOf = (n: number): string => (n === attnum ? newName : attrs.rows.find((a) => a.attnum === n)!.attname);

  const { unsupported, views } = await scanColumnDependents(client, t, attnum);

  const indexes = await readIndexes(client, t, attnum, names, nameOf, unsupported);
  const constraints = [...(await readChecks(client, t, table, attnum, names)), ...(await readForeignKeys(client, t, attnum, newName, unsupported))];
  const seqs = await client.query<QualifiedName>(
    `SELECT n.nspname AS schema, s.relname AS name FROM pg_depend d
       JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_namespace n ON n.oid = s.relnamespace
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass
        AND d.refobjsubid = $2 AND d.deptype = 'a' ORDER BY 1, 2`,
    [t, attnum],
  );
  const comment = await client.query<{ c: string | null }>(`SELECT col_description($1::regclass, $2) AS c`, [t, attnum]);
  await client.query('DROP TABLE pg_temp.pgshift_carry_names');
  return { indexes, constraints, ownedSequences: seqs.rows, comment: comment.rows[0]?.c ?? null, unsupported, views };
}

/** A temporary table with the same column numbers as the table, `newName` at `attnum`: a deparse context. */
async function namesTable(
  client: Client,
  attrs: readonly { attnum: number; attname: string; dropped: boolean }[],
  attnum: number,
  newName: string,
): Promise<number> {
  const cols = attrs.map((a) => `${ident(a.attnum === attnum ? newName : a.attname)} int`);
  await client.query(`CREATE TEMP TABLE pgshift_carry_names (${cols.join(', ')}) ON COMMIT DROP`);
  const dropped = attrs.filter((a) => a.dropped);
  if (dropped.length) await client.query(`ALTER TABLE pgshift_carry_names ${dropped.map((a) => `DROP COLUMN ${ident(a.attname)}`).join(', ')}`);
  const { rows } = await client.query<{ oid: number }>(`SELECT 'pg_temp.pgshift_carry_names'::regclass::oid::int8::float8 AS oid`);
  return rows[0]!.oid;
}

interface IndexRow {
  name: string;
  unique: boolean;
  valid: boolean;
  primary: boolean;
  exclusion: boolean;
  nkey: number;
  keys: number[];
  opclasses: string[];
  collations: (string | null)[];
  options: number[];
  amname: string;
  canorder: boolean;
  exprs: string | null;
  pred: string | null;
  reloptions: string[] | null;
  tablespace: string | null;
  nullsnotdistinct: boolean;
  contype: string | null;
  deferrable: boolean | null;
  deferred: boolean | null;
  hasattoptions: boolean;
}

async function readIndexes(
  client: Client,
  t: string,
  attnum: number,
  names: number,
  nameOf: (n: number) => string,
  unsupported: string[],
): Promise<ColumnIndex[]> {
  const { rows } = await client.query<IndexRow>(
    `SELECT ic.relname AS name, i.indisunique AS unique, i.indisvalid AS valid, i.indisprimary AS primary,
            i.indisexclusion AS exclusion, i.indnkeyatts AS nkey, i.indkey::int2[] AS keys, i.indoption::int2[] AS options,
            ARRAY(SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(o.opcname)
                    FROM unnest(i.indclass) WITH ORDINALITY AS k(oid, ord)
                    JOIN pg_opclass o ON o.oid = k.oid JOIN pg_namespace n ON n.oid = o.opcnamespace ORDER BY k.ord) AS opclasses,
            ARRAY(SELECT CASE WHEN k.oid = 0 THEN NULL ELSE pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.collname) END
                    FROM unnest(i.indcollation) WITH ORDINALITY AS k(oid, ord)
                    LEFT JOIN pg_collation c ON c.oid = k.oid LEFT JOIN pg_namespace n ON n.oid = c.collnamespace ORDER BY k.ord) AS collations,
            am.amname, pg_indexam_has_property(am.oid, 'can_order') AS canorder,
            pg_get_expr(i.indexprs, $3) AS exprs, pg_get_expr(i.indpred, $3) AS pred,
            ic.reloptions, ts.spcname AS tablespace,
            coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false) AS nullsnotdistinct,
            con.contype::text AS contype, con.condeferrable AS deferrable, con.condeferred AS deferred,
            EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indexrelid AND a.attoptions IS NOT NULL) AS hasattoptions
       FROM pg_index i
       JOIN pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_am am ON am.oid = ic.relam
       LEFT JOIN pg_tablespace ts ON ts.oid = ic.reltablespace
       LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
      WHERE i.indrelid = $1::regclass
        AND ($2 = ANY (i.indkey::int2[])
             OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                          AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid AND d.refobjsubid = $2))
      ORDER BY ic.relname`,
    [t, attnum, names],
  );
  const out: ColumnIndex[] = [];
  for (const r of rows) {
    if (r.primary || r.contype === 'p') continue; // reported with the constraint
    if (r.exclusion || r.contype === 'x') continue;
    if (!r.valid) continue; // an INVALID index serves no query and enforces nothing: not worth carrying
    if (r.hasattoptions) {
      unsupported.push(`index ${r.name}: operator class options are not carried`);
      continue;
    }
    const exprs = r.exprs === null ? [] : splitTopLevel(r.exprs);
    if (exprs.length !== r.keys.filter((k) => k === 0).length) {
      unsupported.push(`index ${r.name}: its expressions could not be read back`);
      continue;
    }
    let next = 0;
    const item = (k: number): string => (k === 0 ? `(${exprs[next++]!})` : ident(nameOf(k)));
    const keys = r.keys.slice(0, r.nkey).map((k, i) => {
      const parts = [item(k)];
      if (r.collations[i]) parts.push(`COLLATE ${r.collations[i]}`);
      parts.push(r.opclasses[i]!);
      if (r.canorder) {
        const desc = (r.options[i]! & 1) !== 0;
        const nullsFirst = (r.options[i]! & 2) !== 0;
        if (desc) parts.push('DESC');
        if (nullsFirst !== desc) parts.push(nullsFirst ? 'NULLS FIRST' : 'NULLS LAST');
      }
      return parts.join(' ');
    });
    const include = r.keys.slice(r.nkey).map(item);
    const definition = [
      `USING ${ident(r.amname)} (${keys.join(', ')})`,
      include.length ? `INCLUDE (${include.join(', ')})` : '',
      r.nullsnotdistinct ? 'NULLS NOT DISTINCT' : '',
      r.reloptions?.length ? `WITH (${r.reloptions.map(reloption).join(', ')})` : '',
      r.tablespace ? `TABLESPACE ${ident(r.tablespace)}` : '',
      r.pred ? `WHERE ${r.pred}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    // A UNIQUE constraint's index has plain key columns only, in the default operator classes.
    const constraintDefinition =
      r.contype === 'u'
        ? [
            `UNIQUE${r.nullsnotdistinct ? ' NULLS NOT DISTINCT' : ''} (${r.keys.slice(0, r.nkey).map(item).join(', ')})`,
            include.length ? `INCLUDE (${include.join(', ')})` : '',
            r.reloptions?.length ? `WITH (${r.reloptions.map(reloption).join(', ')})` : '',
            r.tablespace ? `USING INDEX TABLESPACE ${ident(r.tablespace)}` : '',
          ]
            .filter(Boolean)
            .join(' ')
        : undefined;
    out.push({
      name: r.name,
      unique: r.unique,
      definition,
      constraint: r.contype === 'u' ? { deferrable: !r.deferrable ? 'no' : r.deferred ? 'deferred' : 'immediate' } : null,
      ...(constraintDefinition ? { constraintDefinition } : {}),
    });
  }
  return out;
}

/** `fillfactor=70` → `fillfactor = '70'`. */
function reloption(option: string): string {
  const at = option.indexOf('=');
  const key = option.slice(0, at);
  return `${/^[a-z_][a-z0-9_]*$/.test(key) ? key : ident(key)} = '${option.slice(at + 1).replaceAll("'", "''")}'`;
}

async function readChecks(client: Client, t: string, table: QualifiedName, attnum: number, names: number): Promise<ColumnConstraint[]> {
  const { rows } = await client.query<{ name: string; expr: string; validated: boolean; noinherit: boolean }>(
    `SELECT conname AS name, pg_get_expr(conbin, $3) AS expr, convalidated AS validated, connoinherit AS noinherit
       FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c' AND $2 = ANY (conkey) ORDER BY conname`,
    [t, attnum, names],
  );
  return rows.map((r) => ({
    kind: 'check' as const,
    table,
    name: r.name,
    definition: `CHECK (${r.expr})${r.noinherit ? ' NO INHERIT' : ''}`,
    validated: r.validated,
  }));
}

const FK_ACTIONS: Record<string, string> = { a: '', r: 'RESTRICT', c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT' };

// Columns newer than PostgreSQL 14 (confdelsetcols 15, conperiod 17, conenforced 18) are read through
// to_jsonb(c), which simply lacks the key on older servers instead of failing the whole query.
async function readForeignKeys(client: Client, t: string, attnum: number, newName: string, unsupported: string[]): Promise<ColumnConstraint[]> {
  const { rows } = await client.query<{
    name: string;
    schema: string;
    table: string;
    from: string[];
    refschema: string;
    reftable: string;
    to: string[];
    upd: string;
    del: string;
    match: string;
    deferrable: boolean;
    deferred: boolean;
    validated: boolean;
    references: boolean;
    delsetcols: string[] | null;
    enforced: boolean;
    period: boolean;
  }>(
    `SELECT c.conname AS name, n.nspname AS schema, r.relname AS table, rn.nspname AS refschema, rr.relname AS reftable,
            ARRAY(SELECT CASE WHEN c.conrelid = $1::regclass AND k.n = $2 THEN $3 ELSE a.attname::text END
                    FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) AS "from",
            ARRAY(SELECT CASE WHEN c.confrelid = $1::regclass AND k.n = $2 THEN $3 ELSE a.attname::text END
                    FROM unnest(c.confkey) WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) AS "to",
            CASE WHEN jsonb_typeof(to_jsonb(c) -> 'confdelsetcols') IS DISTINCT FROM 'array' THEN NULL ELSE
              ARRAY(SELECT CASE WHEN c.conrelid = $1::regclass AND k.n::int2 = $2 THEN $3 ELSE a.attname::text END
                      FROM jsonb_array_elements_text(to_jsonb(c) -> 'confdelsetcols') WITH ORDINALITY AS k(n, o)
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n::int2 ORDER BY k.o) END AS delsetcols,
            c.confupdtype AS upd, c.confdeltype AS del, c.confmatchtype AS match,
            c.condeferrable AS deferrable, c.condeferred AS deferred, c.convalidated AS validated,
            (c.confrelid = $1::regclass AND $2 = ANY (c.confkey)) AS "references",
            coalesce((to_jsonb(c) ->> 'conenforced')::boolean, true) AS enforced,
            coalesce((to_jsonb(c) ->> 'conperiod')::boolean, false) AS period
       FROM pg_constraint c
       JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
       JOIN pg_class rr ON rr.oid = c.confrelid JOIN pg_namespace rn ON rn.oid = rr.relnamespace
      WHERE c.contype = 'f' AND c.conparentid = 0
        AND ((c.conrelid = $1::regclass AND $2 = ANY (c.conkey)) OR (c.confrelid = $1::regclass AND $2 = ANY (c.confkey)))
      ORDER BY n.nspname, r.relname, c.conname`,
    [t, attnum, newName],
  );
  const out: ColumnConstraint[] = [];
  for (const r of rows) {
    if (!r.enforced || r.period) {
      unsupported.push(`constraint ${r.name} on ${r.schema}.${r.table}: ${r.period ? 'temporal (PERIOD)' : 'NOT ENFORCED'} foreign keys are not carried`);
      continue;
    }
    const action = (on: string, code: string, cols: string[] | null): string =>
      FK_ACTIONS[code] ? ` ON ${on} ${FK_ACTIONS[code]}${cols ? ` (${cols.map(ident).join(', ')})` : ''}` : '';
    const definition =
      `FOREIGN KEY (${r.from.map(ident).join(', ')}) REFERENCES ${qualified({ schema: r.refschema, name: r.reftable })} (${r.to.map(ident).join(', ')})` +
      (r.match === 'f' ? ' MATCH FULL' : r.match === 'p' ? ' MATCH PARTIAL' : '') +
      action('UPDATE', r.upd, null) +
      action('DELETE', r.del, r.delsetcols) +
      (r.deferrable ? ` DEFERRABLE${r.deferred ? ' INITIALLY DEFERRED' : ''}` : '');
    out.push({
      kind: 'foreign-key',
      table: { schema: r.schema, name: r.table },
      name: r.name,
      definition,
      validated: r.validated,
      direction: r.references ? 'to' : 'from',
      references: { schema: r.refschema, name: r.reftable },
    });
  }
  return out;
}

/**
 * Split `pg_get_expr` output of an expression list at its top-level commas:
 * commas inside parentheses, brackets, string literals or quoted names
 * belong to one expression. The text is PostgreSQL's own deparse, so these
 * are the only ways a comma can be nested.
 */
export function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "'" || ch === '"') {
      const close = ch;
      for (i++; i < text.length; i++) {
        if (text[i] === close) {
          if (text[i + 1] === close) i++;
          else break;
        }
      }
    } else if (ch === '(' || ch === '[') depth++;
    else if (ch === ')' || ch === ']') depth--;
    else if (ch === ',' && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  return out.filter((s) => s.length > 0);
}
