import { as, list, str, typeText, type Node, type TableRef } from './ast.js';
import type { ColumnChangeSuggestion } from './context.js';
import { columnFacts } from './schema.js';

/**
 * The `add` plan for an ADD COLUMN that would rewrite the table for a
 * volatile default, or fail on existing rows (and old code's inserts) for
 * NOT NULL without one. A default that is a bare call (`gen_random_uuid()`)
 * is both the value every row gets and the default new code's inserts keep;
 * any other value is left to a person (a placeholder `lint` refuses).
 * Undefined when the column's type is not plain text of the statement.
 */
export function addSuggestion(def: Node, column: string, t: TableRef, dflt: Node | undefined): ColumnChangeSuggestion | undefined {
  const type = typeText(def.typeName);
  if (!type) return undefined;
  const value = bareCall(dflt?.raw_expr);
  return { kind: 'add', table: t, column, type, notNull: columnFacts(def).notNull, value, keepDefault: value !== undefined };
}

/** `name()` when the expression is a call without arguments of an unqualified function. */
function bareCall(expr: unknown): string | undefined {
  const call = as(expr, 'FuncCall');
  const names = list(call?.funcname);
  const name = names.length === 1 ? str(as(names[0], 'String')?.sval) : undefined;
  return call && name && /^[a-z_][a-z0-9_]*$/.test(name) && list(call.args).length === 0 ? `${name}()` : undefined;
}
