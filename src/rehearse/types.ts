import { ExitCode, PgshiftError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Phase } from '../phases/phases.js';
import type { Guards } from '../plan/types.js';
import type { Direction } from './schedule.js';

/** How one cell of the matrix ended; `n.a.` where that code may not run (or nothing is to be checked). */
export type CellOutcome = 'pass' | 'fail' | 'n.a.';

/** One run of `--old`, `--new` or `--setup`. */
export interface CommandCell {
  readonly outcome: CellOutcome;
  readonly command?: string | undefined;
  readonly durationMs?: number | undefined;
  /** The command's exit code (null when a signal ended it). */
  readonly exitCode?: number | null | undefined;
  readonly signal?: string | null | undefined;
  /** The last lines of its output (stdout and stderr together), on failure. */
  readonly tail?: readonly string[] | undefined;
}

/** `verify` at a step where both sides must agree. */
export interface VerifyCell {
  readonly outcome: CellOutcome;
  /** Differing rows, by plan. */
  readonly differing?: Readonly<Record<string, number>> | undefined;
  readonly error?: string | undefined;
}

/** pgshift's own apply or rollback at a step. */
export interface MigrateCell {
  readonly outcome: 'pass' | 'fail';
  readonly durationMs: number;
  readonly error?: string | undefined;
}

/** One row of the matrix. */
export interface RehearsalStep {
  readonly direction: Direction;
  readonly action: 'apply' | 'rollback';
  readonly phase: Phase;
  /** The phase the plans stand at while the commands run (null: none applied). */
  readonly at: Phase | null;
  /** Re-applied on the way to contract without running anything (already rehearsed). */
  readonly quiet: boolean;
  readonly migrate: MigrateCell;
  readonly old: CommandCell;
  readonly new: CommandCell;
  readonly verify: VerifyCell;
}

/** What `rehearse` found. */
export interface Rehearsal {
  /** Plan names, in the order they were applied. */
  readonly plans: readonly string[];
  /** The scratch database (dropped by now). */
  readonly database: string;
  readonly server: 'database-url' | 'embedded';
  readonly setup: CommandCell;
  /** Synthetic rows inserted into each plan's table. */
  readonly rows: number;
  readonly steps: readonly RehearsalStep[];
  /** One line per cell that should have passed and did not. */
  readonly failures: readonly string[];
  /** True when every cell that should pass did. */
  readonly ok: boolean;
  readonly durationMs: number;
}

/** What a rehearsal runs and where. */
export interface RehearseOptions {
  /** Shell command running the old release's tests. */
  readonly old: string;
  /** Shell command running the new release's tests. */
  readonly new: string;
  /** Shell command building the schema (run first). */
  readonly setup?: string | undefined;
  /**
   * A server to create the scratch database on (the URL's own database is
   * only used to connect). Undefined: an embedded PostgreSQL is started.
   */
  readonly databaseUrl?: string | undefined;
  /** Synthetic rows to insert into each plan's table after setup (default 0). */
  readonly rows?: number | undefined;
  /** The first phase at which the new release runs (default switch-read). */
  readonly newFrom?: Phase | undefined;
  readonly stateSchema?: string | undefined;
  readonly guards?: Partial<Guards> | undefined;
  readonly log?: Logger | undefined;
  /** Aborting stops the commands, drops the scratch database and rejects with `RehearsalInterruptedError`. */
  readonly signal?: AbortSignal | undefined;
  /** Lines of a failing command's output kept (default `REHEARSE_TAIL_LINES`). */
  readonly tailLines?: number | undefined;
}

/** The rehearsal was interrupted (Ctrl-C, SIGTERM); the scratch database was dropped. Exit 1. */
export class RehearsalInterruptedError extends PgshiftError {
  readonly exitCode = ExitCode.failed;
}
