import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import type { BackfillSettings } from '../plan/types.js';
import type { BackfillControl, StateStore } from '../state/store.js';

/** While paused, how often the walk looks whether it may go on. */
const PAUSED_POLL_MS = 500;
/** A pause is said when it starts, then this often. */
const PAUSED_LOG_EVERY_MS = 30_000;

/** The backfill settings in force: the plan file's, each replaced by what `tune` recorded. */
export interface SteeredSettings {
  readonly targetBatchMs: number | null;
  readonly pauseMs: number;
  readonly workers: number;
  readonly maxReplicaLagMs: number | null;
}

/** The plan file's settings with a steering row applied (`target_batch_ms: 0` keeps batches fixed, as in a plan file). */
export function steered(file: BackfillSettings, control: BackfillControl | null): SteeredSettings {
  return {
    targetBatchMs: control?.targetBatchMs == null ? file.targetBatchMs : control.targetBatchMs === 0 ? null : control.targetBatchMs,
    pauseMs: control?.pauseMs ?? file.pauseMs,
    workers: control?.workers ?? file.workers ?? 1,
    maxReplicaLagMs: control?.maxReplicaLagMs ?? file.maxReplicaLagMs,
  };
}

/**
 * A running backfill as steered from outside (`migrate plan pause | resume |
 * tune`, from any machine, through the state schema). Each worker asks
 * before each batch, on its own connection between two transactions (a
 * primary-key read of one row), so a change takes effect within one batch.
 * A pause holds the walk before its next batch, and is kept across a
 * restart of the runner since it lives in the state schema. A worker beyond
 * a lowered `workers` count hands its range back (the others take it up
 * where it stopped) and idles until the count is raised again or nothing is
 * left to take. The lease is checked while waiting, so a lost lease still
 * stops the walk.
 */
export class Steering {
  private said = '';
  private settings: SteeredSettings;

  constructor(
    private readonly planName: string,
    private readonly file: BackfillSettings,
    private readonly log: Logger,
  ) {
    this.settings = steered(file, null);
  }

  /** The settings in force, as of the last look. */
  get current(): SteeredSettings {
    return this.settings;
  }

  /**
   * Before a batch of worker `worker` (0 for a single walk): read the row,
   * say what changed, and wait while paused. `yield` when this worker is
   * beyond `workers`: it should hand its range back. `waiting` tells the
   * progress bar why the walk stands still.
   */
  async beforeBatch(store: StateStore, worker: number, stillHeld: () => void, waiting: (reason: string | null) => void): Promise<SteeredSettings | 'yield'> {
    let lastLog = 0;
    for (;;) {
      const control = await store.control(this.planName);
      this.settings = steered(this.file, control);
      this.sayChanges(control);
      const reason = control?.paused ? `paused by ${control.changedBy} (migrate plan resume ${this.planName} to go on)` : null;
      if (!reason && worker >= this.settings.workers) {
        this.log.info({ worker }, `backfill of ${this.planName}: worker ${worker} hands its range back (workers tuned to ${this.settings.workers})`);
        return 'yield';
      }
      if (!reason) {
        if (lastLog) {
          this.log.info({ worker }, `backfill of ${this.planName}: going on (${this.describe()})`);
          waiting(null);
        }
        return this.settings;
      }
      const now = Date.now();
      if (!lastLog || now - lastLog >= PAUSED_LOG_EVERY_MS) {
        this.log.warn({ worker, paused: control?.paused ?? false }, `backfill of ${this.planName}: ${reason}; no batch is written meanwhile`);
        waiting(reason);
        lastLog = now;
      }
      stillHeld();
      await sleep(PAUSED_POLL_MS);
    }
  }

  /**
   * A worker that handed its range back: idle until `workers` counts it
   * again (true: take the next range) or `left()` is false (nothing to take).
   */
  async whileIdle(store: StateStore, worker: number, left: () => boolean, stillHeld: () => void): Promise<boolean> {
    for (;;) {
      if (!left()) return false;
      const control = await store.control(this.planName);
      this.settings = steered(this.file, control);
      if (worker < this.settings.workers && !control?.paused) return true;
      stillHeld();
      await sleep(PAUSED_POLL_MS);
    }
  }

  /** Say once what a `tune` changed (only a change of the row, not every look). */
  private sayChanges(control: BackfillControl | null): void {
    const tuned = control && [control.targetBatchMs, control.pauseMs, control.workers, control.maxReplicaLagMs].some((v) => v !== null);
    const text = tuned ? this.describe() : '';
    if (text === this.said) return;
    this.said = text;
    if (tuned) this.log.info({ settings: this.settings, by: control.changedBy }, `backfill of ${this.planName}: tuned by ${control.changedBy}: ${text}`);
  }

  private describe(): string {
    const s = this.settings;
    return (
      `target_batch_ms ${s.targetBatchMs ?? 'off (fixed batches)'}, pause ${s.pauseMs} ms, workers ${s.workers}, ` +
      `max_replica_lag ${s.maxReplicaLagMs === null ? 'off' : `${s.maxReplicaLagMs} ms`}`
    );
  }
}
