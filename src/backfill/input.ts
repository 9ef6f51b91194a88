import type { ColumnChange, PlanFacts } from '../changes/model.js';
import type { InPlaceFix } from '../changes/steps.js';
import type { ObjectNames } from '../changes/sql-objects.js';
import type { QualifiedName } from '../db/ident.js';
import type { RunContext } from '../guard/context.js';
import type { Plan } from '../plan/types.js';
import type { StateStore } from '../state/store.js';
import type { KeyValue } from './keyset.js';
import type { TriggerBypass } from './trigger-bypass.js';

/* What a backfill is given and what it reports, apart from the walk itself, so its parts (batch, verify) and its callers share them without importing one another. */

/** Backfill progress, reported after every batch and while waiting for replicas. */
export interface BackfillProgress {
  readonly plan: string;
  readonly rowsDone: number;
  /** Estimated rows to cover (never below `rowsDone`). */
  readonly rowsTotal: number;
  /** Rows in the next batch (adaptive). */
  readonly batchSize: number;
  readonly lastKey: readonly string[] | null;
  /** The partition being walked (`schema.name`), for a partitioned table. */
  readonly partition?: string | null | undefined;
  readonly done: boolean;
  /** Rows per second in this run (0 until the first batch). */
  readonly rowsPerSecond: number;
  /** Seconds left at this run's rate; null while unknown. */
  readonly etaSeconds: number | null;
  /** Why the backfill is waiting right now (replica lag, a slot, the WAL rate, sessions, throttle_query, a pause), or null. */
  readonly waiting: string | null;
}

/** What a backfill needs: the runner's context and state store, the plan, and its compiled change. */
export interface BackfillInput {
  readonly ctx: RunContext;
  readonly store: StateStore;
  readonly plan: Plan;
  readonly facts: PlanFacts;
  readonly change: ColumnChange;
  readonly names: ObjectNames;
  /** Fix existing rows in place instead of filling the new columns (the backfill step's `inPlace`). */
  readonly inPlace?: InPlaceFix | undefined;
  readonly onProgress?: ((progress: BackfillProgress) => void) | undefined;
  /**
   * Rewrite only rows whose two sides disagree both ways (`differsPredicate`),
   * not every row whose filled side differs from its expression: contract's
   * rollback refills the old side so, keeping an untouched row's archived
   * value where `reverse` would not give it back exactly.
   */
  readonly onlyDiffering?: boolean | undefined;
  /**
   * Other plans in flight on the same table whose new columns this walk
   * fills too, in the same batches: each with its own checkpoint, committed
   * with every batch, and its own final check later (`backfill.md`, several
   * plans, one walk). Their backfills start with this one's, or stand at the
   * same checkpoint.
   */
  readonly alongside?: readonly BackfillInput[] | undefined;
  /** How batches skip the sync trigger, when the runner may (set by `runBackfill`; see trigger-bypass.ts). */
  readonly bypass?: TriggerBypass | null | undefined;
}

/** One key range walked in keyset batches: the table, or one leaf partition of a partitioned table. */
export interface Segment {
  readonly table: QualifiedName;
  /** Last key when the walk started (inclusive). */
  readonly upper: KeyValue;
  /** `schema.name` of the partition (the checkpoint names it); null for a plain table. */
  readonly id: string | null;
  /** The worker walking it, with a checkpoint of its own (`backfill.workers` > 1). */
  readonly worker?: number | undefined;
  /** The partition the checkpoint moves to when this one is done; undefined for the last segment. */
  readonly next?: string | undefined;
}
