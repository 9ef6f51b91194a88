import { apply } from '../api/apply.js';
import { lint } from '../api/lint.js';
import { rollback } from '../api/rollback.js';
import type { RunOptions } from '../api/session.js';
import { verify } from '../api/verify.js';
import { withClient, type Client } from '../db/client.js';
import { ident } from '../db/ident.js';
import { REHEARSE_TAIL_LINES } from '../defaults.js';
import { PlanError } from '../errors.js';
import { silentLogger } from '../log.js';
import type { Plan } from '../plan/types.js';
import { runCommand } from './command.js';
import { fillTable } from './rows.js';
import { DEFAULT_NEW_FROM, rehearsalSchedule, type ScheduledStep } from './schedule.js';
import { createScratchDatabase, dropScratchDatabase, startEmbeddedServer, urlServer, type RehearsalServer } from './scratch.js';
import {
  RehearsalInterruptedError,
  type CommandCell,
  type MigrateCell,
  type Rehearsal,
  type RehearsalStep,
  type RehearseOptions,
  type VerifyCell,
} from './types.js';

const NOT_APPLICABLE = { outcome: 'n.a.' } as const;

/**
 * Rehearse plans in a scratch database: build the schema with `setup`, fill
 * each plan's table with `rows` synthetic rows, then apply the phases one by
 * one up to stop-write, roll them back one by one to none, and apply them
 * again through contract. After each step the old release's tests run where
 * old code may run, the new release's where new code may, and `verify` where
 * both sides must agree. Several plans move together, phase by phase, in the
 * order given (apply's order: file name), rolled back in reverse.
 *
 * The scratch database is created on `databaseUrl`'s server (or an embedded
 * one) and dropped at the end, on failure, and on abort. Returns the matrix;
 * throws `PlanError` (exit 2) for bad input, `RehearsalInterruptedError` when
 * aborted.
 */
export async function rehearse(plans: readonly Plan[], options: RehearseOptions): Promise<Rehearsal> {
  checkInput(plans, options);
  const log = options.log ?? silentLogger;
  const { signal } = options;
  signal?.throwIfAborted();
  const server: RehearsalServer = options.databaseUrl ? urlServer(options.databaseUrl) : await startEmbeddedServer();
  let database: { name: string; url: string } | null = null;
  let cleaned: Promise<void> | null = null;
  const cleanup = (): Promise<void> =>
    (cleaned ??= (async () => {
      if (database)
        await dropScratchDatabase(server.adminUrl, database.name).catch((error) =>
          log.error({ err: error }, `could not drop scratch database ${database!.name}`),
        );
      await server.stop();
    })());
  try {
    if (signal?.aborted) throw interrupted(signal);
    database = await createScratchDatabase(server.adminUrl);
    log.info({ database: database.name }, 'created scratch database');
    const work = rehearseIn(plans, options, server, database);
    // Swallowed: once aborted, the work fails on the dropped database and nobody waits for it.
    work.catch(() => undefined);
    return await untilAborted(work, signal, cleanup);
  } finally {
    await cleanup();
  }
}

function checkInput(plans: readonly Plan[], options: RehearseOptions): void {
  if (!plans.length) throw new PlanError('rehearse needs at least one plan');
  if (!options.old.trim()) throw new PlanError('--old must be a command that runs the old release’s tests');
  if (!options.new.trim()) throw new PlanError('--new must be a command that runs the new release’s tests');
  if (options.rows !== undefined && (!Number.isInteger(options.rows) || options.rows < 0)) throw new PlanError('--rows must be a whole number');
  const seen = new Map<string, string>();
  for (const plan of plans) {
    const table = `${plan.table.schema ?? ''}.${plan.table.name}`;
    const other = seen.get(table);
    if (other) throw sameTable(other, plan);
    seen.set(table, plan.name);
  }
}

function sameTable(other: string, plan: Plan): PlanError {
  return new PlanError([
    {
      file: plan.file,
      path: 'table',
      message: `plans "${other}" and "${plan.name}" change the same table; a deploy runs one at a time, so rehearse them one at a time`,
    },
  ]);
}

/** Two plans naming one table differently (`users`, `public.users`): found once the schema exists. */
async function refuseSharedTables(client: Client, plans: readonly Plan[]): Promise<void> {
  const seen = new Map<string, string>();
  for (const plan of plans) {
    const name = (plan.table.schema ? ident(plan.table.schema) + '.' : '') + ident(plan.table.name);
    const { rows } = await client.query<{ oid: string }>('SELECT to_regclass($1)::oid::text AS oid', [name]);
    const other = seen.get(rows[0]!.oid);
    if (other) throw sameTable(other, plan);
    seen.set(rows[0]!.oid, plan.name);
  }
}

/** Resolve with `work`, or reject as soon as `signal` aborts, after `onAbort` cleaned up. */
async function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined, onAbort: () => Promise<void>): Promise<T> {
  if (!signal) return work;
  let listener: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    listener = () => void onAbort().finally(() => reject(interrupted(signal)));
    signal.addEventListener('abort', listener, { once: true });
  });
  try {
    const value = await Promise.race([work, aborted]);
    // The work may end first, on a phase the drop's FORCE cut short: the abort is the cause still.
    if (signal.aborted) throw interrupted(signal);
    return value;
  } catch (error) {
    // The work may fail first, on a killed command or the dropped database: the abort is the cause.
    if (signal.aborted) throw interrupted(signal);
    throw error;
  } finally {
    signal.removeEventListener('abort', listener!);
  }
}

function interrupted(signal: AbortSignal): RehearsalInterruptedError {
  const why = typeof signal.reason === 'string' ? signal.reason : 'aborted';
  return new RehearsalInterruptedError(`rehearsal interrupted (${why}); the scratch database was dropped`);
}

async function rehearseIn(
  plans: readonly Plan[],
  options: RehearseOptions,
  server: RehearsalServer,
  database: { name: string; url: string },
): Promise<Rehearsal> {
  const started = performance.now();
  const log = options.log ?? silentLogger;
  const tailLines = options.tailLines ?? REHEARSE_TAIL_LINES;
  const run: RunOptions = { databaseUrl: database.url, stateSchema: options.stateSchema, guards: options.guards, log };
  const command = (cmd: string, env: Record<string, string>): Promise<CommandCell> =>
    runCommand(cmd, { DATABASE_URL: database.url, ...env }, tailLines, options.signal);

  const setup: CommandCell = options.setup ? await command(options.setup, { PGSHIFT_PHASE: 'none', PGSHIFT_SIDE: 'setup' }) : NOT_APPLICABLE;
  const result = (steps: RehearsalStep[]): Rehearsal => {
    const failures = failuresOf(setup, steps);
    return {
      plans: plans.map((p) => p.name),
      database: database.name,
      server: server.kind,
      setup,
      rows: options.rows ?? 0,
      steps,
      failures,
      ok: failures.length === 0,
      durationMs: Math.round(performance.now() - started),
    };
  };
  if (setup.outcome === 'fail') return result([]);

  // The plans must fit the schema setup built: a mismatch is bad input (exit 2), like `lint`.
  await lint(plans, run);
  await withClient({ databaseUrl: database.url }, async (client) => {
    await refuseSharedTables(client, plans);
    for (const plan of plans) if (options.rows) await fillTable(client, plan, options.rows);
  });

  const steps: RehearsalStep[] = [];
  for (const step of rehearsalSchedule(options.newFrom ?? DEFAULT_NEW_FROM)) {
    options.signal?.throwIfAborted();
    log.info({ direction: step.direction, phase: step.phase }, `rehearsal: ${step.action} ${step.phase}`);
    const migrate = await move(plans, step, run);
    if (migrate.outcome === 'fail') {
      steps.push({ ...cells(step), migrate, old: NOT_APPLICABLE, new: NOT_APPLICABLE, verify: NOT_APPLICABLE });
      // The schema is not where the next step expects it; what follows would rehearse nothing real.
      break;
    }
    const env = { PGSHIFT_PHASE: step.at ?? 'none', PGSHIFT_DIRECTION: step.direction };
    const old = step.runOld ? await command(options.old, { ...env, PGSHIFT_SIDE: 'old' }) : NOT_APPLICABLE;
    const neu = step.runNew ? await command(options.new, { ...env, PGSHIFT_SIDE: 'new' }) : NOT_APPLICABLE;
    const verified = step.verify ? await verifyAll(plans, run) : NOT_APPLICABLE;
    steps.push({ ...cells(step), migrate, old, new: neu, verify: verified });
  }
  return result(steps);
}

function cells(step: ScheduledStep): Pick<RehearsalStep, 'direction' | 'action' | 'phase' | 'at' | 'quiet'> {
  return { direction: step.direction, action: step.action, phase: step.phase, at: step.at, quiet: step.quiet };
}

/** Apply (in order) or roll back (in reverse) one phase of every plan. */
async function move(plans: readonly Plan[], step: ScheduledStep, run: RunOptions): Promise<MigrateCell> {
  const started = performance.now();
  const took = (): number => Math.round(performance.now() - started);
  const ordered = step.action === 'apply' ? plans : [...plans].reverse();
  for (const plan of ordered) {
    const outcome =
      step.action === 'apply' ? (await apply([plan], step.phase, run))[0]! : await rollback(plan, step.phase, run).catch((error: Error) => ({ error }));
    if (outcome.error) return { outcome: 'fail', durationMs: took(), error: `${plan.name}: ${outcome.error.message}` };
  }
  return { outcome: 'pass', durationMs: took() };
}

async function verifyAll(plans: readonly Plan[], run: RunOptions): Promise<VerifyCell> {
  const differing: Record<string, number> = {};
  try {
    for (const plan of plans) differing[plan.name] = (await verify(plan, run)).differing;
  } catch (error) {
    return { outcome: 'fail', differing, error: (error as Error).message };
  }
  return { outcome: Object.values(differing).some((n) => n > 0) ? 'fail' : 'pass', differing };
}

/** Where the phase stands, in words: `switch-read`, or `none`. */
export function atText(step: Pick<RehearsalStep, 'at'>): string {
  return step.at ?? 'none';
}

function failuresOf(setup: CommandCell, steps: readonly RehearsalStep[]): string[] {
  const failures: string[] = [];
  if (setup.outcome === 'fail') failures.push(`setup: \`${setup.command}\` ${exitText(setup)}`);
  for (const s of steps) {
    const where = `${s.direction} ${s.action} ${s.phase} (at ${atText(s)})`;
    if (s.migrate.outcome === 'fail') failures.push(`${where}: pgshift ${s.action} failed: ${s.migrate.error}`);
    for (const side of ['old', 'new'] as const) {
      const cell = s[side];
      if (cell.outcome === 'fail') failures.push(`${where}: ${side} \`${cell.command}\` ${exitText(cell)}`);
    }
    if (s.verify.outcome === 'fail') {
      failures.push(
        `${where}: verify ${
          s.verify.error ??
          Object.entries(s.verify.differing ?? {})
            .map(([p, n]) => `${p}: ${n} row(s) differ`)
            .join(', ')
        }`,
      );
    }
  }
  return failures;
}

/** `exited 1`, or `killed by SIGTERM`, or `could not start`. */
export function exitText(cell: CommandCell): string {
  if (cell.signal) return `killed by ${cell.signal}`;
  return cell.exitCode === null || cell.exitCode === undefined ? 'could not start' : `exited ${cell.exitCode}`;
}
