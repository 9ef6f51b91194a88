import type { ColumnFacts } from '../db/catalog.js';
import { ident } from '../db/ident.js';
import type { RenameSpec } from '../plan/schema.js';
import type { ChangeKindDefinition, PlanFacts } from './model.js';

/**
 * `rename: { column, to }`. The new column carries the old one's type,
 * collation, default (from `expand`, so new code's inserts get it) and NOT
 * NULL (enforced in `switch-read`).
 */
export const rename: ChangeKindDefinition<RenameSpec> = {
  outline: (change) => ({
    reads: [change.column],
    adds: [{ name: change.to, type: null, field: 'rename.to' }],
    expressions: [],
  }),
  resolve: (change, facts) => {
    const old = oldFacts(facts, change.column);
    return {
      old: [{ name: old.name, type: old.type, notNull: old.notNull, default: old.default, reverse: ident(change.to) }],
      new: [
        {
          name: change.to,
          type: old.type,
          collation: old.collation,
          forward: ident(change.column),
          notNull: old.notNull,
          default: old.default,
          defaultFrom: 'expand',
          unique: false,
        },
      ],
    };
  },
};

/** The facts of an old column, which validation guaranteed exists. */
export function oldFacts(facts: PlanFacts, name: string): ColumnFacts {
  const found = facts.columns.find((c) => c.name === name);
  if (!found) throw new Error(`column ${name} is missing from the plan's recorded facts`);
  return found;
}
