/**
 * Typed errors. Each class maps to exactly one exit code (see `exitCodeOf`),
 * and each message names the object at fault and the next thing to do.
 */

/** Process exit codes, as documented in the README. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  invalidInput: 2,
  lockGaveUp: 3,
  verificationFailed: 4,
  busy: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Base class: every pgshift error knows its exit code. */
export abstract class PgshiftError extends Error {
  abstract readonly exitCode: ExitCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** One mistake in a plan file: where it is and what is wrong. */
export interface PlanProblem {
  readonly file: string;
  /** 1-based line in the file, when known. */
  readonly line?: number | undefined;
  /** Dotted path of the field, e.g. `split.into[1].type`; empty for the whole file. */
  readonly path: string;
  readonly message: string;
}

/** Invalid input: plan files, flags, or an edited plan that is in flight. Exit 2. */
export class PlanError extends PgshiftError {
  readonly exitCode = ExitCode.invalidInput;
  readonly problems: readonly PlanProblem[];
  constructor(problems: readonly PlanProblem[] | string) {
    const list = typeof problems === 'string' ? [{ file: '', path: '', message: problems }] : problems;
    super(list.map(formatProblem).join('\n'));
    this.problems = list;
  }
}

function formatProblem(p: PlanProblem): string {
  const where = [p.file + (p.line ? `:${p.line}` : ''), p.path].filter(Boolean).join(' ');
  return where ? `${where}: ${p.message}` : p.message;
}

/** A session that held or waited for a conflicting lock. */
export interface Blocker {
  readonly pid: number;
  readonly state: string | null;
  /** Seconds since the blocker's transaction (or query) started. */
  readonly seconds: number | null;
  readonly query: string | null;
  readonly mode?: string | null | undefined;
  readonly applicationName?: string | null | undefined;
}

/** Every attempt to take a lock timed out. Exit 3. */
export class LockTimeoutError extends PgshiftError {
  readonly exitCode = ExitCode.lockGaveUp;
  constructor(
    readonly table: string,
    readonly step: string,
    readonly attempts: number,
    readonly blockers: readonly Blocker[],
    options?: { cause?: unknown; waitedMs?: number },
  ) {
    super(
      `gave up on a lock on ${table} after ${attempts} attempt(s)` +
        (options?.waitedMs === undefined ? '' : ` and ${(options.waitedMs / 1000).toFixed(1)} s of waiting (guards.max_wait)`) +
        ` while running "${step}".\n` +
        (blockers.length
          ? 'Blocked by:\n' + blockers.map((b) => '  ' + describeBlocker(b)).join('\n')
          : 'No blocker was seen holding a lock on the table at the time.') +
        '\nEnd or wait out the blocking sessions, then run the same command again.',
      options,
    );
  }
}

/** A one-line human description of a blocking session. */
export function describeBlocker(b: Blocker): string {
  const age = b.seconds === null ? '' : ` for ${b.seconds.toFixed(1)}s`;
  const app = b.applicationName ? ` (${b.applicationName})` : '';
  return `pid ${b.pid}${app}: ${b.state ?? 'unknown'}${age}${b.mode ? `, holds ${b.mode}` : ''}: ${b.query ?? ''}`;
}

/** Rows where the old and new columns disagree. Exit 4. */
export class VerificationError extends PgshiftError {
  readonly exitCode = ExitCode.verificationFailed;
  constructor(
    readonly plan: string,
    readonly rows: number,
    readonly sampleKeys: readonly unknown[],
  ) {
    super(
      `${rows} row(s) of plan "${plan}" differ between the old and the new columns` +
        (sampleKeys.length ? `, e.g. key ${sampleKeys.map((k) => JSON.stringify(k)).join(', ')}` : '') +
        `.\nRe-run the backfill with \`migrate plan apply ${plan} --phase backfill\` after finding what wrote them.`,
    );
  }
}

/** Another runner holds this plan's lease right now. Exit 5. */
export class PlanBusyError extends PgshiftError {
  readonly exitCode = ExitCode.busy;
  constructor(
    readonly plan: string,
    readonly holder: string,
  ) {
    super(`plan "${plan}" is being run by another runner (${holder}); wait for it to finish, then try again.`);
  }
}

/** The state schema was written by a newer pgshift than this one. Exit 2. */
export class StateSchemaError extends PgshiftError {
  readonly exitCode = ExitCode.invalidInput;
  constructor(
    readonly schema: string,
    readonly found: number,
    readonly supported: number,
  ) {
    super(
      `the state schema "${schema}" is at version ${found}, newer than this pgshift understands (${supported}): ` +
        'a newer pgshift has run against this database. Run that version (or newer) instead; nothing was changed.',
    );
  }
}

/** An object of the state schema the runner cannot trust, and who owns it. */
export interface UntrustedStateObject {
  /** e.g. `table "public"."old_code_writes"`, `trigger "spy" on "public"."plans" (function …)`. */
  readonly object: string;
  readonly owner: string;
  /** e.g. `is not owned by the runner`. */
  readonly problem: string;
}

/**
 * The state schema holds objects another role made or owns, whose code would
 * run with the runner's rights (a trigger on a state table, a look-alike
 * table, a replaced function), or is a schema where another role could put
 * one before pgshift creates its tables. Nothing was changed. Exit 2.
 */
export class UntrustedStateError extends PgshiftError {
  readonly exitCode = ExitCode.invalidInput;
  constructor(
    readonly schema: string,
    readonly runner: string,
    readonly objects: readonly UntrustedStateObject[],
  ) {
    super(
      `the state schema "${schema}" cannot be trusted by the runner "${runner}": ` +
        objects.map((o) => `${o.object} (owner "${o.owner}") ${o.problem}`).join('; ') +
        ". Nothing was changed. pgshift keeps its state only where every state object is the runner's own: " +
        'drop or move these objects (or have their owner give them to the runner), or pass --schema naming a schema ' +
        `of the runner's own (CREATE SCHEMA pgshift_state AUTHORIZATION "${runner}"); see docs/privileges.md.`,
    );
  }
}

/** This runner's plan lease expired or was taken over while it worked; it stopped. Exit 5. */
export class LeaseLostError extends PgshiftError {
  readonly exitCode = ExitCode.busy;
  constructor(
    readonly plan: string,
    readonly holder: string,
  ) {
    super(
      `plan "${plan}": this runner lost its lease (now ${holder}) and stopped before recording more. ` +
        'Check `migrate plan status`, then run the same command again once no other runner is at work.',
    );
  }
}

/**
 * The runner's connection does not keep session state from one transaction
 * to the next (a transaction- or statement-pooling proxy). Exit 2.
 */
export class SessionNotKeptError extends PgshiftError {
  readonly exitCode = ExitCode.invalidInput;
  constructor(readonly reason: string) {
    super(
      `the connection does not keep its session between transactions (${reason}); ` +
        'this is what PgBouncer in transaction or statement pooling mode does. ' +
        'Run migrate with a direct URL to PostgreSQL or a session-pooled one (--database-url or DATABASE_URL); ' +
        'applications may keep using any pool mode.',
    );
  }
}

/** Anything else that stops a phase: the database said no. Exit 1. */
export class PhaseFailedError extends PgshiftError {
  readonly exitCode = ExitCode.failed;
  readonly code: string | undefined;
  readonly detail: string | undefined;
  readonly hint: string | undefined;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    const pg = options?.cause as { code?: string; detail?: string; hint?: string } | undefined;
    this.code = pg?.code;
    this.detail = pg?.detail;
    this.hint = pg?.hint;
  }
}

/** The exit code for any thrown value: typed errors carry theirs, the rest are failures. */
export function exitCodeOf(error: unknown): ExitCode {
  return error instanceof PgshiftError ? error.exitCode : ExitCode.failed;
}
