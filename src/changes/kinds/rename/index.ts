import { z } from 'zod';
import { ident, qualified } from '../../../db/ident.js';
import { readPartitioning } from '../../../db/partitions.js';
import { planCarryOver } from '../../carry-over.js';
import type { PlanFacts } from '../../model.js';
import { identifier } from '../fields.js';
import { needTargets, oldFacts, type ChangeKindModule } from '../kind.js';
import { namePartitionCopies, partitionRenameProblems } from './partitions.js';

const schema = z.strictObject({ column: identifier, to: identifier });

/**
 * `rename: { column, to }`. The new column carries the old one's type,
 * collation, default (from `expand`, so new code's inserts get it) and NOT
 * NULL (enforced in `switch-read`), and every index, constraint, sequence
 * and comment of the old column (see carry-over).
 */
export const rename = {
  name: 'rename',
  summary: 'give a column a new name',
  usage: 'the new name: plan new rename table.column new_name',
  schema,
  carries: true,
  inverse: false,
  outline: (change) => ({
    reads: [change.column],
    adds: [{ name: change.to, type: null, field: 'rename.to' }],
    expressions: [],
  }),
  /** What is carried, with names for the copies; on a partitioned table, what cannot be built per partition is refused. */
  learn: async (change, { client, table, objects }) => {
    const found = objects.get(change.column)!;
    const partitioning = await readPartitioning(client, table);
    if (partitioning) {
      const problems = (await partitionRenameProblems(client, table, partitioning, change.column, found)).map((message) => ({ path: 'rename', message }));
      if (problems.length) return { problems, facts: {} };
    }
    const taken = await client.query<{ n: string }>(
      `SELECT c.relname::text AS n FROM pg_class c WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1::regclass)
       UNION SELECT conname::text FROM pg_constraint WHERE conrelid = $1::regclass`,
      [qualified(table)],
    );
    const carry = planCarryOver(found, table, change.column, change.to, new Set(taken.rows.map((r) => r.n)));
    return { problems: [], facts: { carry: partitioning ? await namePartitionCopies(client, carry, table, partitioning, change.column, change.to) : carry } };
  },
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
  uniques: () => [],
  propose(request) {
    needTargets(request, 1, this.usage);
    return { column: request.old[0]!.name, to: request.targets[0] };
  },
} satisfies ChangeKindModule<'rename', typeof schema, Pick<PlanFacts, 'carry'>>;
