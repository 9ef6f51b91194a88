import { z } from 'zod';
import { PlanError } from '../../../errors.js';
import { identifier, newColumn, sqlExpression } from '../fields.js';
import { declaredUnique, needTargets, oldFacts, proposed, TEXTUAL, type ChangeKindModule } from '../kind.js';
import { newColumnFrom } from '../new-column.js';

const schema = z.strictObject({
  columns: z.array(identifier).min(2, 'needs at least two columns to merge'),
  into: newColumn,
  reverse: z.record(identifier, sqlExpression),
});

/** `merge: { columns, into, reverse: { column: expr } }`: several columns into one. */
export const merge = {
  name: 'merge',
  summary: 'several columns into one',
  usage: 'the new column: plan new merge table.col1,col2 merged',
  schema,
  carries: false,
  inverse: true,
  outline: (change) => ({
    reads: change.columns,
    adds: [{ name: change.into.name, type: change.into.type, field: 'merge.into.type' }],
    expressions: [
      { field: 'merge.into.using', sql: change.into.using, over: 'old', gives: change.into.name },
      ...change.columns.map((c) => ({ field: `merge.reverse.${c}`, sql: change.reverse[c] ?? '', over: 'new' as const, gives: c })),
    ],
  }),
  check: (change) => {
    const reverseKeys = Object.keys(change.reverse).sort();
    const columns = [...change.columns].sort();
    return reverseKeys.join('\0') === columns.join('\0')
      ? []
      : [
          {
            path: 'merge.reverse',
            message: `must give one expression for each of ${columns.map((c) => `"${c}"`).join(', ')} (has ${reverseKeys.map((c) => `"${c}"`).join(', ') || 'none'})`,
          },
        ];
  },
  resolve: (change, facts) => ({
    old: change.columns.map((name) => {
      const old = oldFacts(facts, name);
      return { name, type: old.type, notNull: old.notNull, default: old.default, reverse: change.reverse[name] ?? 'NULL' };
    }),
    new: [newColumnFrom(change.into, facts)],
  }),
  uniques: (change) => declaredUnique('merge.into.unique', change.into.name, change.into.unique),
  /** Two text columns joined by a space, split back at the first one; otherwise placeholders. */
  propose(request) {
    needTargets(request, 1, this.usage);
    const old = request.old;
    if (old.length < 2) throw new PlanError([{ file: '', path: 'source', message: 'merge needs two or more columns: table.col1,col2' }]);
    const text = old.length === 2 && old.every((c) => TEXTUAL.test(c.type));
    const into = request.targets[0]!;
    const [a, b] = old as [(typeof old)[0], (typeof old)[0]];
    return {
      columns: old.map((c) => c.name),
      into: { name: into, type: 'text', using: proposed(text ? `concat_ws(' ', ${a.name}, ${b.name})` : null, 'text') },
      reverse: Object.fromEntries(
        old.map((c, i) => [
          c.name,
          proposed(text ? (i === 0 ? `split_part(${into}, ' ', 1)` : `nullif(substr(${into}, strpos(${into}, ' ') + 1), ${into})`) : null, c.type),
        ]),
      ),
    };
  },
} satisfies ChangeKindModule<'merge', typeof schema>;
