import type { MergeSpec, RenameSpec, RetypeSpec, SplitSpec } from './schema.js';

/** The change a plan makes, tagged by kind. */
export type Change =
  | ({ readonly kind: 'rename' } & RenameSpec)
  | ({ readonly kind: 'split' } & SplitSpec)
  | ({ readonly kind: 'merge' } & MergeSpec)
  | ({ readonly kind: 'retype' } & RetypeSpec);

/** Backfill tuning, defaults applied. */
export interface BackfillSettings {
  readonly batchSize: number;
  readonly pauseMs: number;
  /** Target duration of one batch for the adaptive batch size; null = fixed size. */
  readonly targetBatchMs: number | null;
  /** Wait while a replica lags more than this; null = do not watch replicas. */
  readonly maxReplicaLagMs: number | null;
}

/** Lock and statement guards, defaults applied. */
export interface Guards {
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly retries: number;
  /** `stop-write` and `contract` wait until no old-code activity was seen for this long (0 = no gate). */
  readonly oldCodeQuietMs: number;
}

/** A validated plan, ready to compile. */
export interface Plan {
  readonly name: string;
  /** The file it came from ('' when built in code). */
  readonly file: string;
  /** As written: schema optional. */
  readonly table: { readonly schema?: string | undefined; readonly name: string };
  /** Key columns for keyset batches; undefined = the primary key. */
  readonly key?: readonly string[] | undefined;
  readonly change: Change;
  readonly backfill: BackfillSettings;
  readonly guards: Guards;
  /**
   * SHA-256 of what the plan changes (table, key, change). Guards and backfill
   * tuning are left out on purpose: raising a lock timeout mid-flight is not
   * an edit of the migration.
   */
  readonly checksum: string;
}
