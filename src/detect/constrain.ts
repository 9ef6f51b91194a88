import type { TableRef } from './ast.js';

/** A `constrain` plan `detect` proposes (only `not_null` so far: a CHECK's or a foreign key's text would have to be printed back from the parse tree). */
export interface ConstrainSuggestion {
  readonly kind: 'constrain';
  readonly table: TableRef;
  readonly column: string;
  readonly not_null: true;
}

/** `SET NOT NULL` on a column of an existing table: a `constrain` plan makes it without the scan under ACCESS EXCLUSIVE, while old code writes. */
export function constrainNotNull(table: TableRef, column: string): ConstrainSuggestion {
  return { kind: 'constrain', table, column, not_null: true };
}

/**
 * The plan's `constrain:` part. No `fix` is proposed: `lint` counts the
 * NULLs there are and refuses the plan, naming them, until a person writes
 * the value old code's NULLs should get (or there are none).
 */
export function constrainPlanBody(change: ConstrainSuggestion): { constrain: { column: string; not_null: true } } {
  return { constrain: { column: change.column, not_null: change.not_null } };
}
