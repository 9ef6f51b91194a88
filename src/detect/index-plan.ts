import { as, list, str, type Node, type TableRef } from './ast.js';

/** An index `detect` can propose an `index` plan for: named, plain btree columns, no predicate. */
export interface IndexSuggestion {
  readonly kind: 'index';
  readonly table: TableRef;
  readonly name: string;
  readonly columns: readonly string[];
  readonly unique: boolean;
}

/**
 * The `index` plan for a `CREATE INDEX` without CONCURRENTLY, when the file
 * says all of it in names: the index's name, and keys that are plain
 * columns of the default ordering, collation and operator class, with no
 * predicate or INCLUDE. An expression or predicate would be quoted from
 * the file, which pgshift does not stand behind without a deparser.
 */
export function indexSuggestion(body: Node, table: TableRef): IndexSuggestion | undefined {
  const name = str(body.idxname);
  const method = str(body.accessMethod);
  if (!name || (method !== undefined && method !== 'btree') || body.whereClause || list(body.indexIncludingParams).length) return undefined;
  const columns: string[] = [];
  for (const p of list(body.indexParams)) {
    const e = as(p, 'IndexElem');
    const column = str(e?.name);
    const plain = e && !e.expr && !list(e.collation).length && !list(e.opclass).length && [undefined, 'SORTBY_DEFAULT'].includes(str(e.ordering));
    if (!column || !plain || ![undefined, 'SORTBY_NULLS_DEFAULT'].includes(str(e.nulls_ordering))) return undefined;
    columns.push(column);
  }
  return columns.length ? { kind: 'index', table, name, columns, unique: body.unique === true } : undefined;
}

/** The plan file's `index:` part for a suggestion. */
export function indexFields(change: IndexSuggestion): Record<string, unknown> {
  return { name: change.name, columns: [...change.columns], ...(change.unique ? { unique: true } : {}) };
}
