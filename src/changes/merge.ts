import type { MergeSpec } from '../plan/schema.js';
import type { ChangeKindDefinition } from './model.js';
import { newColumnFrom } from './new-column.js';
import { oldFacts } from './rename.js';

/** `merge: { columns, into, reverse: { column: expr } }`: several columns into one. */
export const merge: ChangeKindDefinition<MergeSpec> = {
  outline: (change) => ({
    reads: change.columns,
    adds: [{ name: change.into.name, type: change.into.type, field: 'merge.into.type' }],
    expressions: [
      { field: 'merge.into.using', sql: change.into.using, over: 'old', gives: change.into.name },
      ...change.columns.map((c) => ({ field: `merge.reverse.${c}`, sql: change.reverse[c] ?? '', over: 'new' as const, gives: c })),
    ],
  }),
  resolve: (change, facts) => ({
    old: change.columns.map((name) => {
      const old = oldFacts(facts, name);
      return { name, type: old.type, notNull: old.notNull, default: old.default, reverse: change.reverse[name] ?? 'NULL' };
    }),
    new: [newColumnFrom(change.into, facts)],
  }),
};
