import type { QualifiedName } from '../db/ident.js';
import { PHASES, type Phase } from '../phases/phases.js';

/** PostgreSQL's table lock modes (plus `none` for steps that lock no table). */
export type LockMode = 'none' | 'ACCESS SHARE' | 'ROW EXCLUSIVE' | 'SHARE UPDATE EXCLUSIVE' | 'SHARE' | 'SHARE ROW EXCLUSIVE' | 'ACCESS EXCLUSIVE';

/** One table a step locks, and how. */
export interface TableLock {
  readonly table: QualifiedName;
  readonly mode: LockMode;
}

/**
 * `pg_locks.mode` names of every mode conflicting with `mode` (the conflict
 * table of "Explicit Locking" in PostgreSQL's manual), including the two
 * modes this type does not name (ROW SHARE: SELECT FOR UPDATE; EXCLUSIVE).
 */
export function conflictingLockNames(mode: LockMode): string[] {
  const names: Record<string, string[]> = {
    'ACCESS SHARE': ['AccessExclusiveLock'],
    'ROW EXCLUSIVE': ['ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'],
    'SHARE UPDATE EXCLUSIVE': ['ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'],
    SHARE: ['RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'],
    'SHARE ROW EXCLUSIVE': ['RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'],
    'ACCESS EXCLUSIVE': [
      'AccessShareLock',
      'RowShareLock',
      'RowExclusiveLock',
      'ShareUpdateExclusiveLock',
      'ShareLock',
      'ShareRowExclusiveLock',
      'ExclusiveLock',
      'AccessExclusiveLock',
    ],
  };
  return names[mode] ?? [];
}

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
  /**
   * Every table the step locks, when it locks more than the plan's table
   * (dropping or adding a foreign key locks both of its tables). The runner
   * takes them all at the start of the step's transaction, the first waiting
   * at most lock_timeout and the others `NOWAIT`, so it never holds one lock
   * while queued for another; `plan show` lists them.
   */
  readonly locks?: readonly TableLock[] | undefined;
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

/** Fill the new columns of existing rows in keyset batches (or, with `inPlace`, fix a column of them). */
export interface BackfillStep {
  readonly kind: 'backfill';
  readonly description: string;
  /** Rewrite existing rows in place instead of filling new columns (a kind with a program of its own, e.g. `constrain`). */
  readonly inPlace?: InPlaceFix | undefined;
}

/**
 * What a backfill batch writes when it fixes rows in place: each batch runs
 * `UPDATE table AS <alias> SET <set> WHERE <its key range> AND <stale>`. The
 * texts name the row's columns through `alias` and every other name
 * qualified (printed by PostgreSQL at plan start), so the batch runs under
 * the fixed `search_path = pg_catalog, pg_temp`.
 */
export interface InPlaceFix {
  readonly alias: string;
  /** The assignments, e.g. `"email" = COALESCE(new.email, '')`. */
  readonly set: string;
  /** True for a row the batch must rewrite. */
  readonly stale: string;
  /** The columns the batch rewrites (ANALYZEd after it). */
  readonly columns: readonly string[];
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

/**
 * Drop CONCURRENTLY the indexes on `columns` that no constraint needs (read
 * from the catalog when it runs), before a transaction that drops the
 * columns would drop them under ACCESS EXCLUSIVE (see `runner/drop-indexes.ts`).
 */
export interface DropIndexesStep {
  readonly kind: 'drop-indexes';
  readonly description: string;
  readonly table: QualifiedName;
  readonly columns: readonly string[];
}

/** An old column contract renamed aside instead of dropping it, and the name it has there. */
export interface ArchivedColumn {
  readonly column: string;
  readonly archive: string;
}

/**
 * Record in the plan's state what contract archived (the columns under their
 * archive names) and until when it keeps them (`contract.keep`); with a keep
 * of 0 the archive is purged at once, as contract dropped the columns before.
 */
export interface RecordArchiveStep {
  readonly kind: 'record-archive';
  readonly description: string;
  readonly columns: readonly ArchivedColumn[];
}

/**
 * contract's rollback: give the old columns of every row the value `reverse`
 * gives from the new ones, in keyset batches through the backfill (resumable:
 * a re-run carries on from its checkpoint). Rows new code wrote after
 * contract have stale or NULL old columns until then.
 */
export interface RefillOldStep {
  readonly kind: 'refill-old';
  readonly description: string;
}

/** contract's rollback: build again, CONCURRENTLY, the indexes contract dropped on the old columns (their definitions are in the plan's state). */
export interface RestoreIndexesStep {
  readonly kind: 'restore-indexes';
  readonly description: string;
  readonly table: QualifiedName;
}

/** Refuse: this direction cannot be undone (contract's rollback). */
export interface RefuseStep {
  readonly kind: 'refuse';
  readonly description: string;
}

export type Step =
  SqlStep | BackfillStep | VerifyStep | ResetBackfillStep | DropIndexesStep | RecordArchiveStep | RefillOldStep | RestoreIndexesStep | RefuseStep;

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

/** A program whose every phase does nothing, for a kind to fill in the phases it needs. */
export function emptyProgram(): Record<Phase, PhaseSteps> {
  return Object.fromEntries(PHASES.map((p): [Phase, PhaseSteps] => [p, { apply: [], rollback: [] }])) as Record<Phase, PhaseSteps>;
}

/**
 * The same step declared to lock several tables: `locks` once each, in the
 * order given (the runner waits for the first and takes the others NOWAIT).
 * One table is no claim worth making: the step locks it as any step does.
 */
export function lockingAll(step: SqlStep, locks: readonly TableLock[]): SqlStep {
  const seen = new Set<string>();
  const unique = locks.filter((l) => {
    const key = JSON.stringify([l.table.schema, l.table.name]);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return unique.length > 1 ? { ...step, locks: unique } : step;
}
