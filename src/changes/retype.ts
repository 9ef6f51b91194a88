import { objectName } from '../db/ident.js';
import type { RetypeSpec } from '../plan/schema.js';
import type { ChangeKindDefinition } from './model.js';
import { canonicalType } from './new-column.js';
import { oldFacts } from './rename.js';

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

/**
 * `retype: { column, to, using, reverse, as? }`: one column to another type.
 * `using` is written over the old column and `reverse` over the new value,
 * both by the column's own name, so `price::numeric` and `price::text` read
 * naturally. NOT NULL is carried unless `not_null` says otherwise; a default
 * and UNIQUE are declared, since the old ones were written for another type.
 * When PostgreSQL can change the type in place (see `RetypeFacts`), the
 * program is one catalog-only statement instead.
 */
export const retype: ChangeKindDefinition<RetypeSpec> = {
  outline: (change) => ({
    reads: [change.column],
    adds: [{ name: retypedColumn(change), type: change.to, field: 'retype.to', exprName: change.column }],
    expressions: [
      { field: 'retype.using', sql: change.using, over: 'old', gives: retypedColumn(change) },
      { field: 'retype.reverse', sql: change.reverse, over: 'new', gives: change.column },
    ],
  }),
  resolve: (change, facts) => {
    const old = oldFacts(facts, change.column);
    const name = retypedColumn(change);
    return {
      old: [{ name: old.name, type: old.type, notNull: old.notNull, default: old.default, reverse: change.reverse }],
      new: [
        {
          name,
          type: canonicalType(facts, name),
          collation: null,
          forward: change.using,
          notNull: change.not_null ?? old.notNull,
          default: change.default ?? null,
          defaultFrom: 'switch-read',
          unique: !!change.unique,
          uniqueWith: typeof change.unique === 'object' ? change.unique.with : undefined,
          exprName: change.column,
        },
      ],
    };
  },
};
