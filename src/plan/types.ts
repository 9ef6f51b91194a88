import type { Change } from '../changes/kinds/registry.js';
import type { HOOK_EVENTS } from './schema.js';

export type { Change } from '../changes/kinds/registry.js';

/** Backfill tuning, defaults applied. */
export interface BackfillSettings {
  readonly batchSize: number;
  readonly pauseMs: number;
  /** Target duration of one batch for the adaptive batch size; null = fixed size. */
  readonly targetBatchMs: number | null;
  /** Wait while a replica lags more than this; null = do not watch replicas. */
  readonly maxReplicaLagMs: number | null;
  /** Runners walking disjoint key ranges at once (1 = one runner); null = decided from the server when the backfill starts. */
  readonly workers: number | null;
  /** Wait while a logical replication slot is more than this many bytes behind; null = do not watch slots. */
  readonly maxSlotLagBytes: number | null;
  /** An inactive slot unmoved this long is named once and ignored; 0 = never ignored. */
  readonly abandonedSlotAfterMs: number;
  /** Average WAL bytes per second the batches may write; null = no cap. */
  readonly maxWalRateBytes: number | null;
  /** Read-only SQL returning true while the walk should wait; null = none. */
  readonly throttleQuery: string | null;
  /** Wait while more sessions than this, pgshift's aside, are active; null = do not watch. */
  readonly maxActiveSessions: number | null;
}

/** Lock and statement guards, defaults applied. */
export interface Guards {
  /** PostgreSQL's lock_timeout for each attempt: the longest an application query can queue behind a pgshift statement. */
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number;
  /** Backfill batches: attempts after the first when rows stay locked. */
  readonly retries: number;
  /** How long one step may wait in all for its locks (watching from outside the queue, and its attempts) before exit 3. */
  readonly maxWaitMs: number;
  /** `stop-write` and `contract` wait until no old-code activity was seen for this long (0 = no gate). */
  readonly oldCodeQuietMs: number;
}

/** What contract does with the old columns, defaults applied. */
export interface ContractSettings {
  /** How long the archived old columns are kept before the first `apply` after it drops them; 0 = dropped at contract. */
  readonly keepMs: number;
}

/** A lifecycle event a hook runs on. */
export type HookEvent = (typeof HOOK_EVENTS)[number];

/** A command run through the shell on one event. */
export interface HookCommand {
  readonly event: HookEvent;
  readonly command: string;
}

/** Lifecycle hooks, defaults applied (docs/hooks.md). */
export interface HookSettings {
  readonly commands: readonly HookCommand[];
  /** `backfill_progress` runs every this many percent. */
  readonly progressEvery: number;
  /** A hook still running after this long is killed. */
  readonly timeoutMs: number;
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
  /** Plans this one starts after, once each is contracted (`after:`; none = the folder's order alone). */
  readonly after: readonly string[];
  readonly change: Change;
  readonly backfill: BackfillSettings;
  readonly guards: Guards;
  /** `contract:`; undefined for a plan built in code (the defaults). */
  readonly contract?: ContractSettings | undefined;
  /** `hooks:`; undefined for a plan built in code (no hooks, the defaults). */
  readonly hooks?: HookSettings | undefined;
  /**
   * SHA-256 of what the plan changes (table, key, change). Guards and backfill
   * tuning are left out on purpose: raising a lock timeout mid-flight is not
   * an edit of the migration.
   */
  readonly checksum: string;
}
