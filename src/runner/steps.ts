import type { Phase } from '../phases/phases.js';

/** PostgreSQL's table lock modes (plus `none` for steps that lock no table). */
export type LockMode =
  | 'none'
  | 'ACCESS SHARE'
  | 'ROW EXCLUSIVE'
  | 'SHARE UPDATE EXCLUSIVE'
  | 'SHARE'
  | 'SHARE ROW EXCLUSIVE'
  | 'ACCESS EXCLUSIVE';

/**
 * Which timeouts a step runs under:
 * - `guarded`: the plan's lock_timeout and statement_timeout (every short DDL);
 * - `lock-only`: lock_timeout but no statement_timeout (a scan under a lock
 *   that does not block reads or writes, e.g. VALIDATE CONSTRAINT);
 * - `none`: neither (CREATE INDEX CONCURRENTLY waits for old snapshots by design).
 */
export type TimeoutMode = 'guarded' | 'lock-only' | 'none';

/** SQL statements run together; in one transaction unless `transaction` is false. */
export interface SqlStep {
  readonly kind: 'sql';
  /** What the step does, for logs and `plan show`. */
  readonly description: string;
  readonly statements: readonly string[];
  /** The strongest table lock the step takes, and why it is short, for `plan show`. */
  readonly lock: LockMode;
  /** False for statements PostgreSQL refuses inside a transaction block (CONCURRENTLY). */
  readonly transaction: boolean;
  readonly timeouts: TimeoutMode;
  /** A query returning one boolean column `done`: when true the step is skipped (idempotence). */
  readonly skipIf?: string | undefined;
  /**
   * Set when the step is a `CREATE INDEX CONCURRENTLY` of this index: before
   * each attempt an INVALID leftover of the same name (a killed or failed
   * build) is dropped CONCURRENTLY, and while it runs its progress is logged.
   */
  readonly concurrentIndex?: { readonly schema: string; readonly name: string } | undefined;
}

/** Fill the new columns of existing rows in keyset batches. */
export interface BackfillStep {
  readonly kind: 'backfill';
  readonly description: string;
}

/** Count rows where old and new disagree; fail with exit 4 if any. */
export interface VerifyStep {
  readonly kind: 'verify';
  readonly description: string;
  /**
   * `backfill`: the backfill phase's final check, which reads only the rows
   * that may have changed since the batch that covered them (falling back to
   * every row when that would prove less); absent: every row.
   */
  readonly scope?: 'backfill' | undefined;
}

/** Forget the backfill checkpoint, so a re-applied backfill starts over. */
export interface ResetBackfillStep {
  readonly kind: 'reset-backfill';
  readonly description: string;
}

/** Refuse: this direction cannot be undone (contract's rollback). */
export interface RefuseStep {
  readonly kind: 'refuse';
  readonly description: string;
}

export type Step = SqlStep | BackfillStep | VerifyStep | ResetBackfillStep | RefuseStep;

/** The steps of one phase in each direction. */
export interface PhaseSteps {
  readonly apply: readonly Step[];
  readonly rollback: readonly Step[];
}

/** What a change kind compiles to: every phase's steps, as data. */
export type PhaseProgram = Readonly<Record<Phase, PhaseSteps>>;

/** A transactional, guarded step; the common case. */
export function ddl(description: string, lock: LockMode, statements: readonly string[], skipIf?: string): SqlStep {
  return { kind: 'sql', description, statements, lock, transaction: true, timeouts: 'guarded', skipIf };
}
