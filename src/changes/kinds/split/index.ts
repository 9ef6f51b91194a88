import { z } from 'zod';
import { newColumn, sqlExpression, identifier } from '../fields.js';
import { declaredUnique, needTargets, oldFacts, proposed, TEXTUAL, type ChangeKindModule } from '../kind.js';
import { newColumnFrom } from '../new-column.js';

const schema = z.strictObject({
  column: identifier,
  into: z.array(newColumn).min(2, 'needs at least two new columns (use rename or retype for one)'),
  reverse: sqlExpression,
});

/** `split: { column, into: [...], reverse }`: one column into several. */
export const split = {
  name: 'split',
  summary: 'one column into several',
  usage: 'two or more new columns: plan new split table.column first last',
  schema,
  carries: false,
  inverse: true,
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
  uniques: (change) => change.into.flatMap((c, i) => declaredUnique(`split.into[${i}].unique`, c.name, c.unique)),
  /** Two new columns of a text column: first word, and the rest; otherwise placeholders. */
  propose(request) {
    needTargets(request, -2, this.usage);
    const first = request.old[0]!;
    const text = TEXTUAL.test(first.type) && request.targets.length === 2;
    const c = first.name;
    const [a, b] = request.targets as [string, string];
    return {
      column: c,
      into: request.targets.map((n, i) => ({
        name: n,
        type: first.type,
        using: proposed(text ? (i === 0 ? `split_part(${c}, ' ', 1)` : `nullif(substr(${c}, strpos(${c}, ' ') + 1), ${c})`) : null, first.type),
      })),
      reverse: proposed(text ? `concat_ws(' ', ${a}, ${b})` : null, first.type),
    };
  },
} satisfies ChangeKindModule<'split', typeof schema>;
