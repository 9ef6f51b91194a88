import { MAX_BATCH_ROWS, MIN_BATCH_ROWS } from '../defaults.js';

/** A batch may at most grow by this factor over the last one: one fast batch (cached pages) must not make the next one huge. */
const MAX_GROWTH = 2;
/** … and shrinks at most to this fraction, unless it timed out: one slow batch (a checkpoint, a lock wait) is often noise. */
const MAX_SHRINK = 0.5;
/** After a statement timeout, the next attempt is this fraction of the batch that timed out. */
const TIMEOUT_SHRINK = 0.25;
/** The target never exceeds this share of statement_timeout, so a batch at target is far from being cancelled. */
const TIMEOUT_HEADROOM = 0.25;

/**
 * The adaptive batch size, after GitLab's batched background migration
 * optimizer: each batch's rows per millisecond, measured, sets the next
 * size so a batch takes about the target time. Growth and shrinkage per step
 * are bounded so that noise does not swing the size, and the whole range is
 * bounded by `MIN_BATCH_ROWS`..`MAX_BATCH_ROWS`. A short target keeps row
 * locks (held until the batch commits) short for the application.
 */
export class BatchSizer {
  private current: number;
  /** A plan may start below MIN_BATCH_ROWS; it then stays the floor. */
  private readonly min: number;
  /** The duration a batch aims at, capped well below statement_timeout. */
  private target: number | null;
  private readonly cap: number;

  /**
   * @param start the plan's `batch_size` (or the size a resumed backfill had reached)
   * @param targetMs `backfill.target_batch_ms`; null keeps the size fixed (but a timeout still shrinks it)
   * @param statementTimeoutMs the guard each batch runs under; 0 = none
   */
  constructor(start: number, targetMs: number | null, statementTimeoutMs: number) {
    this.min = Math.max(1, Math.min(MIN_BATCH_ROWS, Math.round(start)));
    this.current = this.clamp(start);
    this.cap = statementTimeoutMs > 0 ? statementTimeoutMs * TIMEOUT_HEADROOM : Infinity;
    this.target = targetMs === null ? null : Math.max(1, Math.min(targetMs, this.cap));
  }

  /** The duration a batch aims at (null: fixed size). */
  get targetMs(): number | null {
    return this.target;
  }

  /** Aim at another duration from the next batch on (`migrate plan tune`); null keeps the current size. */
  retarget(targetMs: number | null): void {
    this.target = targetMs === null ? null : Math.max(1, Math.min(targetMs, this.cap));
  }

  /** Rows in the next batch. */
  get size(): number {
    return this.current;
  }

  /** A batch of `rows` rows committed in `ms` milliseconds: size the next one. */
  observe(rows: number, ms: number): void {
    if (this.targetMs === null || rows <= 0) return;
    // A partial batch (the last one) measures the rate just as well as a full one.
    const ideal = (rows / Math.max(ms, 1)) * this.targetMs;
    const bounded = Math.min(this.current * MAX_GROWTH, Math.max(this.current * MAX_SHRINK, ideal));
    this.current = this.clamp(bounded);
  }

  /** The batch hit statement_timeout: shrink hard. False when already at the minimum (give up). */
  timedOut(): boolean {
    if (this.current <= this.min) return false;
    this.current = this.clamp(this.current * TIMEOUT_SHRINK);
    return true;
  }

  private clamp(n: number): number {
    return Math.round(Math.min(MAX_BATCH_ROWS, Math.max(this.min, n)));
  }
}
