import { ident, qualified, type QualifiedName } from '../db/ident.js';
import type { Partitioning } from '../db/partitions.js';
import type { SqlStep } from './steps.js';
import type { CarriedIndex, CarryOver } from './carry-model.js';
import { buildPartitionedIndex, dropPartitionedIndex, type PartitionedIndex } from './partitioned-index.js';

export type { CarriedIndex, PartitionCopyNames } from './carry-model.js';

const same = (a: QualifiedName, b: QualifiedName): boolean => a.schema === b.schema && a.name === b.name;

function asPartitionedIndex(i: CarriedIndex): PartitionedIndex {
  return {
    name: i.tempName,
    unique: i.unique,
    definition: i.definition,
    constraint: i.constraint ? { definition: i.constraintDefinition ?? '', deferrable: i.constraint.deferrable } : null,
    partitionName: (p) => {
      const found = i.partitions?.find((c) => same(c.table, p));
      if (!found) throw new Error(`no copy name recorded for index ${i.name} on partition ${p.schema}.${p.name}`);
      return found.tempName;
    },
  };
}

/** switch-read: each carried index built per partition (see `buildPartitionedIndex`). */
export function carryPartitionedIndexes(carry: CarryOver, table: QualifiedName, partitioning: Partitioning): SqlStep[] {
  return carry.indexes.flatMap((i) => buildPartitionedIndex(table, partitioning.partitions, asPartitionedIndex(i), `the copy of index ${i.name}`));
}

/** switch-read rollback: the copies, attached or not, on the table and on every partition. */
export function dropPartitionedCopies(carry: CarryOver, table: QualifiedName, partitioning: Partitioning): string[] {
  return carry.indexes.flatMap((i) => dropPartitionedIndex(table, partitioning.partitions, asPartitionedIndex(i)));
}

/**
 * contract: the partitions' copies take their final names. `ALTER INDEX …
 * RENAME` also renames the constraint an index backs; it takes SHARE UPDATE
 * EXCLUSIVE on the index (ACCESS EXCLUSIVE when it backs a constraint), a
 * catalog update within contract's short transaction.
 */
export function renamePartitionCopies(carry: CarryOver): string[] {
  return carry.indexes.flatMap((i) =>
    (i.partitions ?? []).map((c) => `ALTER INDEX ${qualified({ schema: c.table.schema, name: c.tempName })} RENAME TO ${ident(c.finalName)}`),
  );
}
