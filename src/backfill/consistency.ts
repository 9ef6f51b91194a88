import { ident } from '../db/ident.js';
import type { ColumnChange } from '../changes/model.js';
import { forwardCalls, reverseCalls, type ObjectNames } from '../changes/sql-objects.js';

const row = (cols: readonly { name: string }[]): string => `ROW(${cols.map((c) => ident(c.name)).join(', ')})`;

/**
 * True for a row whose sides disagree: the new side is not what the forward
 * expressions give from the old side, and the old side is not what the
 * reverse expressions give from a new side that holds something.
 * NULL-safe (`IS DISTINCT FROM`). A row written by new code (old derived by
 * reverse) counts as consistent even where the forward expressions would not
 * give back exactly its values; a row whose new side is still all NULL does
 * not, even when the reverse of NULLs happens to equal its old side (a split
 * whose reverse is `concat_ws` gives '' for NULLs, and '' is a real name).
 */
export function differsPredicate(change: ColumnChange, names: ObjectNames): string {
  // Columns filled once derive nothing back: a row differs while one is still NULL.
  if (change.new.every((c) => c.filledOnce)) return newSideStale(change, names);
  const newAllNull = change.new.map((c) => `${ident(c.name)} IS NULL`).join(' AND ');
  return `${newSideStale(change, names)}` + ` AND ((${newAllNull}) OR ${row(change.old)} IS DISTINCT FROM ROW(${reverseCalls(change, names).join(', ')}))`;
}

/**
 * True for a row whose new side is not what the forward expressions give:
 * what the backfill rewrites. Rows already right (kept in sync by the trigger,
 * or written by a run that was killed after its checkpoint) are left alone.
 */
export function newSideStale(change: ColumnChange, names: ObjectNames): string {
  const calls = forwardCalls(change, names);
  const derived = change.new.flatMap((c, i) => (c.filledOnce ? [] : [{ c, call: calls[i]! }]));
  // A column filled once is stale while NULL only: its value may be volatile, and a filled one is never recomputed.
  const once = change.new.filter((c) => c.filledOnce).map((c) => `${ident(c.name)} IS NULL`);
  if (!once.length) return `${row(change.new)} IS DISTINCT FROM ROW(${calls.join(', ')})`;
  return [...(derived.length ? [`${row(derived.map((d) => d.c))} IS DISTINCT FROM ROW(${derived.map((d) => d.call).join(', ')})`] : []), ...once].join(' OR ');
}

/** `SET "new" = fwd("old"), ...`: the backfill's assignment. */
export function fillNewAssignments(change: ColumnChange, names: ObjectNames): string {
  const calls = forwardCalls(change, names);
  return change.new.map((c, i) => `${ident(c.name)} = ${calls[i]}`).join(', ');
}
