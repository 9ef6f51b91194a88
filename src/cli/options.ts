import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_PLAN_DIR, DEFAULT_STATE_SCHEMA } from '../defaults.js';
import type { RunOptions } from '../api/session.js';
import { isPhase, PHASES, type Phase } from '../phases/phases.js';
import { toMilliseconds } from '../plan/duration.js';
import { HOOK_EVENTS } from '../plan/schema.js';
import type { HookCommand, HookEvent } from '../plan/types.js';
import { createLogger } from '../log.js';
import { terminalLog } from './terminal.js';

/** Options every `plan` subcommand accepts. */
export interface CommonOptions {
  readonly dir: string;
  /** Every `--database-url` given, in order (several: run on each). */
  readonly databaseUrl?: string[];
  readonly schema: string;
  readonly json?: boolean;
  readonly lockTimeout?: number;
  readonly statementTimeout?: number;
  readonly retries?: number;
  readonly maxWait?: number;
  readonly oldCodeQuiet?: number;
  readonly force?: boolean;
  readonly strict?: boolean;
  readonly logLevel?: string;
  /** Every `--hook <event>=<command>`, in order. */
  readonly hook?: HookCommand[];
  readonly hookProgressEvery?: number;
}

export const duration =
  (flag: string) =>
  (value: string): number => {
    const ms = toMilliseconds(value);
    if (ms === null) throw new InvalidArgumentError(`${flag} needs a duration such as 2s or 500ms`);
    return ms;
  };

/** Parse a whole-number flag. */
export const integer = (value: string): number => {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('needs a whole number');
  return Number(value);
};

/** Parse a `--phase` value: a phase name or one of `extra`. */
export function phaseArgument<E extends string>(extra: E): (value: string) => Phase | E {
  return (value) => {
    if (value === extra || isPhase(value)) return value as Phase | E;
    throw new InvalidArgumentError(`must be ${extra} or one of ${PHASES.join(', ')}`);
  };
}

/** Parse one `--hook <event>=<command>` and add it to the ones before. */
function hookArgument(value: string, previous: HookCommand[] | undefined): HookCommand[] {
  const at = value.indexOf('=');
  const event = value.slice(0, Math.max(at, 0));
  if (at < 1 || !HOOK_EVENTS.includes(event as HookEvent) || !value.slice(at + 1).trim())
    throw new InvalidArgumentError(`needs <event>=<command>, the event one of ${HOOK_EVENTS.join(', ')}`);
  return [...(previous ?? []), { event: event as HookEvent, command: value.slice(at + 1) }];
}

/** Add the shared options to a subcommand; `hooks` adds `--hook` (apply and rollback). */
export function withCommonOptions(command: Command, { guards = false, force = false, strict = false, hooks = false } = {}): Command {
  command
    .option('--dir <path>', 'directory of plan files', DEFAULT_PLAN_DIR)
    .addOption(
      new Option('--database-url <url>', 'connection URL (else DATABASE_URL, else libpq PG* variables); repeat it for several databases').argParser(
        (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
      ),
    )
    .option('--schema <name>', 'schema for pgshift state', process.env.PGSHIFT_SCHEMA ?? DEFAULT_STATE_SCHEMA)
    .option('--json', 'print JSON lines (the default when stdout is not a TTY)')
    .option('--no-json', 'print human text even when stdout is not a TTY')
    .option('--log-level <level>', 'pino log level on stderr (default info; PGSHIFT_LOG_LEVEL)');
  if (guards) {
    command
      .option('--lock-timeout <duration>', "override the plan's guards.lock_timeout", duration('--lock-timeout'))
      .option('--statement-timeout <duration>', "override the plan's guards.statement_timeout", duration('--statement-timeout'))
      .option('--retries <n>', "override the plan's guards.retries", integer)
      .option('--max-wait <duration>', "override the plan's guards.max_wait", duration('--max-wait'))
      .option('--old-code-quiet <duration>', "override the plan's guards.old_code_quiet (0 turns the old-code gate off)", duration('--old-code-quiet'));
  }
  if (hooks) {
    command
      .addOption(
        new Option('--hook <event>=<command>', `run a shell command on an event (${HOOK_EVENTS.join(', ')}), besides the plan's hooks; repeatable`).argParser(
          hookArgument,
        ),
      )
      .option('--hook-progress-every <percent>', "override the plan's hooks.progress_every (1-100)", (value: string) => {
        const n = integer(value);
        if (n < 1 || n > 100) throw new InvalidArgumentError('needs a whole number from 1 to 100');
        return n;
      });
  }
  if (force)
    command.option('--force', 'accept a plan file edited after the plan started, go past the old-code gate, move a drifted plan (recorded in the log)');
  if (strict)
    command.option('--strict', 'refuse (exit 2) instead of warning when a schema on the search_path, or the state schema, is writable by other roles');
  return command;
}

/** The API's run options from the CLI's, for `target` (default: the first `--database-url`). */
export function runOptions(o: CommonOptions, target: string | undefined = o.databaseUrl?.[0]): RunOptions {
  return {
    databaseUrl: target,
    stateSchema: o.schema,
    guards: { lockTimeoutMs: o.lockTimeout, statementTimeoutMs: o.statementTimeout, retries: o.retries, maxWaitMs: o.maxWait, oldCodeQuietMs: o.oldCodeQuiet },
    force: o.force,
    strict: o.strict,
    hooks: { commands: o.hook, progressEvery: o.hookProgressEvery },
    log: createLogger(o.logLevel, humanLogs(o) ? terminalLog : undefined),
  };
}

/** Logs for people when stderr is a terminal and `--json` was not given; JSON lines otherwise (a pipeline's log collector). */
function humanLogs(o: CommonOptions): boolean {
  return o.json !== true && Boolean(process.stderr.isTTY);
}

/** JSON output unless stdout is a TTY and --json was not given; `--no-json` asks for the human text anywhere. */
export function wantsJson(o: CommonOptions): boolean {
  if (o.json === false) return false;
  return Boolean(o.json) || !process.stdout.isTTY;
}
