import { kindOf } from '../changes/kinds/registry.js';
import type { TableFacts } from '../db/catalog.js';
import { display, type QualifiedName } from '../db/ident.js';
import type { Partitioning } from '../db/partitions.js';
import type { Plan } from './types.js';

/**
 * What a declared `unique` needs, checked before anything runs: the `with`
 * columns exist and stay; on a partitioned table, PostgreSQL only allows a
 * unique index that includes every partition key column (of the table and of
 * sub-partitioned partitions), is on no expression key, and has no foreign
 * partition to index. Each refusal says what can be written instead.
 */
export function checkDeclaredUnique(
  plan: Plan,
  table: QualifiedName,
  facts: TableFacts,
  reads: readonly string[],
  partitioning: Partitioning | undefined,
): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  for (const u of kindOf(plan.change).uniques(plan.change)) {
    for (const w of u.with) {
      if (!facts.columns.some((c) => c.name === w))
        problems.push({ path: u.field, message: `"with" names column "${w}", which does not exist in ${display(table)}` });
      else if (reads.includes(w)) problems.push({ path: u.field, message: `"with" names column "${w}", which the plan replaces (it is dropped at contract)` });
    }
    if (!partitioning) continue;
    const foreign = partitioning.partitions.filter((p) => p.foreign);
    if (foreign.length) {
      problems.push({
        path: u.field,
        message: `${display(table)} has foreign-table partitions (${foreign.map((p) => display(p.table)).join(', ')}), which PostgreSQL cannot index: leave "unique" out`,
      });
    } else if (partitioning.keyHasExpressions) {
      problems.push({
        path: u.field,
        message: `${display(table)} (or one of its partitions) is partitioned by an expression, and PostgreSQL cannot build a unique index on such a table: leave "unique" out`,
      });
    } else {
      const missing = partitioning.keyColumns.filter((k) => k !== u.column && !u.with.includes(k));
      if (missing.length) {
        const all = [u.column, ...u.with, ...missing];
        problems.push({
          path: u.field,
          message:
            `"${u.column}" cannot be unique ${u.with.length ? `with (${u.with.join(', ')}) only` : 'on its own'}: ${display(table)} is partitioned by ` +
            `(${partitioning.keyColumns.join(', ')}), and PostgreSQL requires a unique index on a partitioned table to include every partition key column. ` +
            `Write "unique: { with: [${[...u.with, ...missing].join(', ')}] }" to make (${all.join(', ')}) unique, or leave "unique" out`,
        });
      }
    }
  }
  return problems;
}
