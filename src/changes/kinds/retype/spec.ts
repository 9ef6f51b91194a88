import { z } from 'zod';
import { objectName } from '../../../db/ident.js';
import { identifier, newColumnConstraints, sqlExpression, typeName } from '../fields.js';

export const retypeSchema = z.strictObject({
  column: identifier,
  to: typeName,
  /** The new column's name while both exist, and after contract; default `<column>_new`. */
  as: identifier.optional(),
  using: sqlExpression,
  reverse: sqlExpression,
  ...newColumnConstraints,
});
export type RetypeSpec = z.infer<typeof retypeSchema>;

/**
 * The new column of a retype: `as`, or `<column>_new`. Both columns exist
 * from expand to stop-write, so the new one needs a name of its own, and it
 * keeps it after contract: renaming it back in contract would break the new
 * code that is running against it. A `rename` plan afterwards gives it the
 * old name back, with the same guarantees.
 */
export function retypedColumn(change: Pick<RetypeSpec, 'column' | 'as'>): string {
  return change.as ?? objectName(change.column, 'new');
}
