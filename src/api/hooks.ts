import { spawn } from 'node:child_process';
import type { BackfillProgress } from '../backfill/input.js';
import { exitCodeOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Action, Phase } from '../phases/phases.js';
import type { HookCommand, HookEvent, HookSettings, Plan } from '../plan/types.js';
import { DEFAULT_HOOK_PROGRESS_EVERY, DEFAULT_HOOK_TIMEOUT_MS } from '../defaults.js';
import type { OldCodeError } from './old-code.js';
import { inSpan } from '../telemetry.js';

/** Hooks given on the command line (`--hook <event>=<command>`), run besides the plan's own. */
export interface RunHooks {
  readonly commands?: readonly HookCommand[] | undefined;
  /** Overrides the plan's `hooks.progress_every`. */
  readonly progressEvery?: number | undefined;
}

/** Where the hooks of one run come from, and what every event says. */
export interface HookContext {
  readonly plan: Plan;
  /** The table as the catalog named it (`schema.table`). */
  readonly table: string;
  readonly action: Action;
  readonly databaseUrl: string | undefined;
  readonly cli: RunHooks | undefined;
  readonly log: Logger;
}

/** Most characters of a hook's output kept for the log line of its failure. */
const OUTPUT_TAIL_CHARS = 2_000;

/**
 * The lifecycle hooks of one plan's run (docs/hooks.md). Each event runs its
 * commands through the shell with the facts in `PGSHIFT_*` variables. They
 * run one at a time in the order of the events, beside the migration rather
 * than in its way: a backfill never waits for a webhook. A hook that fails
 * or outlives `hooks.timeout` is logged and killed, and never fails the
 * migration, since a chat server being down is no reason to stop a deploy.
 * `flush()` waits for the ones still queued.
 */
export class PlanHooks {
  private readonly commands: readonly HookCommand[];
  private readonly progressEvery: number;
  private readonly timeoutMs: number;
  private readonly env: NodeJS.ProcessEnv;
  private readonly secrets: readonly string[];
  private queue: Promise<void> = Promise.resolve();
  private current: Phase | null = null;
  private progressStep = 0;
  private waiting: string | null = null;

  constructor(private readonly context: HookContext) {
    const settings: HookSettings = context.plan.hooks ?? { commands: [], progressEvery: DEFAULT_HOOK_PROGRESS_EVERY, timeoutMs: DEFAULT_HOOK_TIMEOUT_MS };
    this.commands = [...settings.commands, ...(context.cli?.commands ?? [])];
    this.progressEvery = context.cli?.progressEvery ?? settings.progressEvery;
    this.timeoutMs = settings.timeoutMs;
    this.secrets = secretsOf(context.databaseUrl);
    this.env = this.commands.length ? baseEnv(process.env, this.secrets, context.databaseUrl ?? process.env.DATABASE_URL) : {};
  }

  /** Run `fn` as `phase`, with `phase_start` before it and `phase_success` or `phase_failure` after. */
  private async phase<T>(phase: Phase, fn: () => Promise<T>): Promise<T> {
    this.current = phase;
    this.progressStep = 0;
    this.waiting = null;
    const started = Date.now();
    this.emit('phase_start', {});
    try {
      const result = await fn();
      this.emit('phase_success', { PGSHIFT_ELAPSED_MS: String(Date.now() - started) });
      return result;
    } catch (error) {
      this.emit('phase_failure', { PGSHIFT_ELAPSED_MS: String(Date.now() - started), ...errorVars(error) });
      throw error;
    } finally {
      this.current = null;
    }
  }

  /** Run `fn` as `phase` in a span of its own (when telemetry is on), inside `phase()`'s hooks. */
  observePhase<T>(phase: Phase, fn: () => Promise<T>): Promise<T> {
    const { plan, table, action } = this.context;
    return inSpan(`pgshift phase ${phase}`, { 'pgshift.plan': plan.name, 'pgshift.table': table, 'pgshift.phase': phase, 'pgshift.action': action }, () =>
      this.phase(phase, fn),
    );
  }

  /** The old-code gate refused `phase`. */
  gateRefused(phase: Phase, error: OldCodeError): void {
    const applications = [...new Set(error.activity.writers.map((w) => w.applicationName ?? ''))].filter(Boolean);
    this.emit('gate_refused', {
      PGSHIFT_PHASE: phase,
      ...errorVars(error),
      PGSHIFT_OLD_CODE_SESSIONS: String(error.activity.writers.length),
      PGSHIFT_OLD_CODE_APPLICATIONS: applications.join(','),
      PGSHIFT_OLD_CODE_STATEMENTS: String(error.activity.statements.length),
    });
  }

  /** Backfill progress: `backfill_progress` each time another `progress_every` % is crossed, `throttle` when a wait begins. */
  readonly onProgress = (progress: BackfillProgress): void => {
    if (!this.commands.length) return;
    const percent = progress.done ? 100 : progress.rowsTotal > 0 ? Math.min(100, Math.floor((progress.rowsDone * 100) / progress.rowsTotal)) : 0;
    const vars = {
      PGSHIFT_PERCENT: String(percent),
      PGSHIFT_ROWS_DONE: String(progress.rowsDone),
      PGSHIFT_ROWS_TOTAL: String(progress.rowsTotal),
      PGSHIFT_ROWS_PER_SECOND: String(Math.round(progress.rowsPerSecond)),
      PGSHIFT_ETA_SECONDS: progress.etaSeconds === null ? '' : String(Math.round(progress.etaSeconds)),
    };
    if (progress.waiting && progress.waiting !== this.waiting) this.emit('throttle', { ...vars, PGSHIFT_WAITING: progress.waiting });
    this.waiting = progress.waiting;
    const step = Math.floor(percent / this.progressEvery);
    if (step > this.progressStep) {
      this.progressStep = step;
      this.emit('backfill_progress', vars);
    }
  };

  /** Wait for every hook queued so far. */
  flush(): Promise<void> {
    return this.queue;
  }

  private emit(event: HookEvent, vars: Record<string, string>): void {
    const commands = this.commands.filter((c) => c.event === event);
    if (!commands.length) return;
    const { plan, table, action } = this.context;
    const env: NodeJS.ProcessEnv = {
      ...this.env,
      PGSHIFT_EVENT: event,
      PGSHIFT_PLAN: plan.name,
      PGSHIFT_PLAN_FILE: plan.file,
      PGSHIFT_KIND: plan.change.kind,
      PGSHIFT_TABLE: table,
      PGSHIFT_ACTION: action,
      PGSHIFT_PHASE: this.current ?? '',
      PGSHIFT_TIME: new Date().toISOString(),
      ...Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, redact(v, this.secrets)])),
    };
    for (const { command } of commands) {
      this.queue = this.queue.then(() => runHook(command, event, env, this.timeoutMs, this.context.log));
    }
  }
}

function errorVars(error: unknown): Record<string, string> {
  return { PGSHIFT_ERROR: (error as Error)?.message ?? String(error), PGSHIFT_EXIT_CODE: String(exitCodeOf(error)) };
}

/** The password in the connection URL and in `PGPASSWORD`: what no hook may see. */
function secretsOf(databaseUrl: string | undefined): string[] {
  const secrets: string[] = [];
  const url = databaseUrl ?? process.env.DATABASE_URL;
  if (url) {
    try {
      const password = new URL(url).password;
      if (password) secrets.push(password, decodeURIComponent(password));
    } catch {
      // Not a URL (a libpq keyword string): keep the whole of it out, it may hold the password.
      secrets.push(url);
    }
  }
  if (process.env.PGPASSWORD) secrets.push(process.env.PGPASSWORD);
  return [...new Set(secrets)];
}

/**
 * The runner's environment without the password: `PGPASSWORD`, and every
 * variable whose value contains it (`DATABASE_URL`, a test's admin URL), are
 * left out; `PGSHIFT_DATABASE` is the connection URL with its password
 * masked, so a hook can say which database without being able to log in.
 */
function baseEnv(env: NodeJS.ProcessEnv, secrets: readonly string[], databaseUrl: string | undefined): NodeJS.ProcessEnv {
  const kept = Object.fromEntries(Object.entries(env).filter(([name, value]) => name !== 'PGPASSWORD' && !(value && secrets.some((s) => value.includes(s)))));
  return { ...kept, PGSHIFT_DATABASE: maskedUrl(databaseUrl) };
}

/** The connection URL with its password as `***`; '' when there is none or it is no URL (a libpq keyword string may hold the password anywhere). */
function maskedUrl(databaseUrl: string | undefined): string {
  if (!databaseUrl) return '';
  try {
    const url = new URL(databaseUrl);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '';
  }
}

function redact(text: string, secrets: readonly string[]): string {
  return secrets.reduce((t, s) => t.split(s).join('***'), text);
}

/** Run one hook through the shell; never throws. Its whole process group is killed at the timeout, so a hung `curl` under `sh` goes too. */
function runHook(command: string, event: HookEvent, env: NodeJS.ProcessEnv, timeoutMs: number, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    const started = Date.now();
    const child = spawn(command, { shell: true, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      log.warn({ hook: command, event, error: error.message }, `hook for ${event} could not start (the migration goes on): ${error.message}`);
      resolve();
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = Date.now() - started;
      if (timedOut) log.warn({ hook: command, event, ms, output }, `hook for ${event} killed after ${timeoutMs} ms (hooks.timeout; the migration goes on)`);
      else if (code !== 0)
        log.warn({ hook: command, event, code, signal, output }, `hook for ${event} failed with ${signal ?? `exit code ${code}`} (the migration goes on)`);
      else log.debug({ hook: command, event, ms }, `hook for ${event} ran`);
      resolve();
    });
  });
}
