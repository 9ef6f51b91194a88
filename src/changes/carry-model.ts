import type { ColumnConstraint, ColumnIndex } from '../db/column-objects.js';
import type { QualifiedName } from '../db/ident.js';

/* What a rename carries, as data: recorded in the plan's facts, compiled by carry-over.ts and partitioned-carry.ts. */

/** The three names of a carried object. */
export interface CarriedNames {
  /** What it is called on the old column (dropped at contract). */
  readonly name: string;
  /** What its copy on the new column is called until contract. */
  readonly tempName: string;
  /** What the copy is called after contract. */
  readonly finalName: string;
}

/**
 * What a rename carries from the old column to the new one, recorded in the
 * plan's facts at start, so every phase compiles the same statements.
 */
export interface CarryOver {
  /** On a partitioned table, each with its copy's names on every partition. */
  readonly indexes: readonly CarriedIndex[];
  readonly constraints: readonly (ColumnConstraint & CarriedNames)[];
  readonly ownedSequences: readonly QualifiedName[];
  readonly comment: string | null;
}

/** The copy of a carried index on one partition: its name until contract, and after. */
export interface PartitionCopyNames {
  readonly table: QualifiedName;
  readonly tempName: string;
  readonly finalName: string;
}

/** A carried index of a partitioned table, with its copy's names on each partition. */
export type CarriedIndex = ColumnIndex & CarriedNames & { readonly partitions?: readonly PartitionCopyNames[] | undefined };
