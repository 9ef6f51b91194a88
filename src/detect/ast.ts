/**
 * Small readers over libpg_query's JSON parse tree, which is untyped here:
 * each returns what it finds or undefined, never throws on a shape it does
 * not know.
 */

/** A parse-tree node: `{ NodeType: fields }` or the fields themselves. */
export type Node = Record<string, unknown>;

/** The fields of a `{ NodeType: fields }` wrapper when it is of that type. */
export function as(node: unknown, type: string): Node | undefined {
  return node && typeof node === 'object' && type in node ? ((node as Node)[type] as Node) : undefined;
}

/** The first key of a wrapper: its node type. */
export function typeOf(node: unknown): string | undefined {
  return node && typeof node === 'object' ? Object.keys(node)[0] : undefined;
}

export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** One parsed statement of a migration file, with where it starts. */
export interface ParsedStatement {
  readonly file: string;
  /** 1-based line of the statement's first character (comments before it skipped). */
  readonly line: number;
  /** The statement's text as written. */
  readonly text: string;
  /** Offset of `text` in the file, for locations inside it. */
  readonly offset: number;
  /** libpg_query's parse tree of the statement: `{ NodeType: {...} }`. */
  readonly node: Record<string, unknown>;
  /** Set on a statement found inside a `DO` block's body: its text is the statement alone. */
  readonly inDo?: boolean;
}

/** `schema.table` as PostgreSQL names it in a RangeVar. */
export interface TableRef {
  readonly schema: string | undefined;
  readonly name: string;
}

export function rangeVar(node: unknown): TableRef | undefined {
  const rv = node as Node | undefined;
  const name = str(rv?.relname);
  return name ? { schema: str(rv?.schemaname), name } : undefined;
}

/** A key that identifies the table whether or not the file qualified it (unqualified = public). */
export function tableKey(t: TableRef): string {
  return `${t.schema ?? 'public'}.${t.name}`;
}

/** The smallest `location` anywhere under a node: where its text starts. */
export function startOf(node: unknown): number | undefined {
  let min: number | undefined;
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === 'object') {
      for (const [k, v] of Object.entries(n)) {
        if (k === 'location' && typeof v === 'number' && v >= 0) min = min === undefined ? v : Math.min(min, v);
        else walk(v);
      }
    }
  };
  walk(node);
  return min;
}

const INTERNAL_TYPES: Readonly<Record<string, string>> = {
  int2: 'smallint',
  int4: 'integer',
  int8: 'bigint',
  float4: 'real',
  float8: 'double precision',
  bool: 'boolean',
  bpchar: 'char',
  varchar: 'varchar',
  timestamptz: 'timestamptz',
  timetz: 'timetz',
};

/** A TypeName node as SQL text (`numeric(10,2)`, `text[]`). */
export function typeText(typeName: unknown): string | undefined {
  const t = typeName as Node | undefined;
  const names = list(t?.names)
    .map((n) => str(as(n, 'String')?.sval))
    .filter((n): n is string => Boolean(n));
  const last = names.at(-1);
  if (!last) return undefined;
  const base = names[0] === 'pg_catalog' ? (INTERNAL_TYPES[last] ?? last) : names.map((n) => (/^[a-z_][a-z0-9_]*$/.test(n) ? n : `"${n}"`)).join('.');
  const mods = list(t?.typmods).map((m) => (as(m, 'A_Const')?.ival as Node | undefined)?.ival);
  const typmod = mods.length && mods.every((m) => typeof m === 'number') ? `(${mods.join(',')})` : '';
  return base + typmod + '[]'.repeat(list(t?.arrayBounds).length);
}
