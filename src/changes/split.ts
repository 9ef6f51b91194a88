import type { SplitSpec } from '../plan/schema.js';
import type { ChangeKindDefinition } from './model.js';
import { newColumnFrom } from './new-column.js';
import { oldFacts } from './rename.js';

/** `split: { column, into: [...], reverse }`: one column into several. */
export const split: ChangeKindDefinition<SplitSpec> = {
  outline: (change) => ({
    reads: [change.column],
    adds: change.into.map((c, i) => ({ name: c.name, type: c.type, field: `split.into[${i}].type` })),
    expressions: [
      ...change.into.map((c, i) => ({ field: `split.into[${i}].using`, sql: c.using, over: 'old' as const, gives: c.name })),
      { field: 'split.reverse', sql: change.reverse, over: 'new', gives: change.column },
    ],
  }),
  resolve: (change, facts) => {
    const old = oldFacts(facts, change.column);
    return {
      old: [{ name: old.name, type: old.type, notNull: old.notNull, default: old.default, reverse: change.reverse }],
      new: change.into.map((c) => newColumnFrom(c, facts)),
    };
  },
};
