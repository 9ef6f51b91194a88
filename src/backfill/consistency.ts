import { ident } from '../db/ident.js';
import type { ColumnChange } from '../changes/model.js';
import { forwardCalls, reverseCalls, type ObjectNames } from '../changes/sql-objects.js';

/**
 * True for a row whose sides disagree: the new side is not what the forward
 * expressions give from the old side, and the old side is not what the
 * reverse expressions give from the new side. NULL-safe (`IS DISTINCT FROM`).
 * A row written by new code (old derived by reverse) counts as consistent
 * even where the forward expressions would not give back exactly its values.
 */
export function differsPredicate(change: ColumnChange, names: ObjectNames): string {
  const row = (cols: readonly { name: string }[]): string => `ROW(${cols.map((c) => ident(c.name)).join(', ')})`;
  return (
    `${row(change.new)} IS DISTINCT FROM ROW(${forwardCalls(change, names).join(', ')})` +
    ` AND ${row(change.old)} IS DISTINCT FROM ROW(${reverseCalls(change, names).join(', ')})`
  );
}

/** `SET "new" = fwd("old"), ...`: the backfill's assignment. */
export function fillNewAssignments(change: ColumnChange, names: ObjectNames): string {
  const calls = forwardCalls(change, names);
  return change.new.map((c, i) => `${ident(c.name)} = ${calls[i]}`).join(', ');
}
