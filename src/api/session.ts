import type { BackfillProgress } from '../backfill/backfill.js';
import { resolveChange } from '../changes/kinds/registry.js';
import { objectNames } from '../changes/sql-objects.js';
import type { PlanFacts } from '../changes/model.js';
import { withClient, type Client, type ConnectionOptions } from '../db/client.js';
import { display, qualified } from '../db/ident.js';
import { DEFAULT_LEASE_MS, DEFAULT_STATE_SCHEMA } from '../defaults.js';
import { PlanError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { Guards, Plan } from '../plan/types.js';
import { stateAccessProblems } from '../plan/phase-privileges.js';
import { runContext } from '../guard/context.js';
import { withPlanLock, type PlanLease } from '../runner/plan-lock.js';
import { toMilliseconds } from '../plan/duration.js';
import type { PhaseInput } from '../runner/run-phase.js';
import { StateStore, inFlight, type PlanState } from '../state/store.js';
import { PlanHooks, type RunHooks } from './hooks.js';

/** Options shared by every command that touches the database. */
export interface RunOptions {
  /** Else `DATABASE_URL`, else libpq's `PG*` variables. */
  readonly databaseUrl?: string | undefined;
  /** Schema for pgshift's state (default `pgshift`). */
  readonly stateSchema?: string | undefined;
  /** Per-run overrides of the plan's guards (CLI flags). */
  readonly guards?: Partial<Guards> | undefined;
  /** Accept a plan edited while in flight. */
  readonly force?: boolean | undefined;
  /** Refuse (exit 2) instead of warning when a schema on the search_path, or the state schema, is writable by other roles. */
  readonly strict?: boolean | undefined;
  readonly log?: Logger | undefined;
  readonly onProgress?: ((progress: BackfillProgress) => void) | undefined;
  /** `--hook <event>=<command>`: run besides the plan's `hooks:` by `apply` and `rollback` (docs/hooks.md). */
  readonly hooks?: RunHooks | undefined;
  /** How long the plan lease lasts without a heartbeat (default `PGSHIFT_LEASE`, else `DEFAULT_LEASE_MS`). */
  readonly leaseMs?: number | undefined;
}

/** A plan opened against the database: its client, state, and (once started) its compiled program. */
export interface PlanSession {
  readonly client: Client;
  readonly store: StateStore;
  readonly plan: Plan;
  readonly log: Logger;
  readonly options: RunOptions;
  /** The plan's lease: `take()` before the first state write if the state schema was missing; `check()` at phase boundaries. */
  readonly lease: PlanLease;
}

/** The plan with the run's guard overrides applied. */
export function withOverrides(plan: Plan, guards: Partial<Guards> | undefined): Plan {
  if (!guards) return plan;
  const defined = Object.fromEntries(Object.entries(guards).filter(([, v]) => v !== undefined)) as Partial<Guards>;
  return { ...plan, guards: { ...plan.guards, ...defined } };
}

/**
 * Connect and run `fn` with the state store. The state schema is not created
 * here: reads of a database pgshift has never touched find no state, and
 * the schema is made by the first write (`StateStore.ensure`), so invalid
 * input leaves the database exactly as it was.
 */
export async function withState<T>(options: RunOptions, fn: (client: Client, store: StateStore) => Promise<T>): Promise<T> {
  const connection: ConnectionOptions = { databaseUrl: options.databaseUrl };
  return withClient(connection, async (client) => fn(client, new StateStore(client, options.stateSchema ?? DEFAULT_STATE_SCHEMA)));
}

/** The lease length: the option, else `PGSHIFT_LEASE` (a duration), else the default. */
export function leaseMs(options: RunOptions): number {
  if (options.leaseMs !== undefined) return options.leaseMs;
  const env = process.env.PGSHIFT_LEASE;
  const ms = env ? toMilliseconds(env) : null;
  if (env && !ms) throw new PlanError(`PGSHIFT_LEASE=${env} is not a duration (e.g. 60s)`);
  return ms ?? DEFAULT_LEASE_MS;
}

/**
 * Connect, check that the role may read and write the state (exit 2 if
 * not, naming each GRANT), that the connection keeps its session (exit 2 if not), take
 * the plan's lease (exit 5 if held), and run `fn`.
 */
export async function withPlanSession<T>(plan: Plan, options: RunOptions, fn: (session: PlanSession) => Promise<T>): Promise<T> {
  const log = (options.log ?? silentLogger).child({ plan: plan.name });
  const ttlMs = leaseMs(options);
  return withState(options, async (client, store) => {
    // Missing privileges are named before the state is read or anything changed (exit 2), not met half-way as `permission denied`.
    const unreachable = await stateAccessProblems(client, plan, store.schema);
    if (unreachable.length) throw new PlanError(unreachable);
    return withPlanLock(
      { client, connection: { databaseUrl: options.databaseUrl }, schema: store.schema, plan: plan.name, ttlMs, log, stateExists: () => store.exists() },
      (lease) => fn({ client, store, plan: withOverrides(plan, options.guards), log, options, lease }),
    );
  });
}

/** Refuse an in-flight plan whose file changed since it started, unless forced (then record the new checksum). */
export async function checkChecksum(session: PlanSession, state: PlanState | null): Promise<void> {
  const { plan, store, options } = session;
  if (!state || !inFlight(state) || state.checksum === plan.checksum) return;
  if (!options.force) {
    throw new PlanError([
      {
        file: plan.file,
        path: '',
        message:
          `plan "${plan.name}" changed after it started (it is at ${state.phase ?? 'no phase'}): ` +
          'put the file back as it was, or roll the plan back first; --force accepts the edit as it is',
      },
    ]);
  }
  session.log.warn({ old: state.checksum, new: plan.checksum }, 'accepting an edited in-flight plan (--force)');
  await store.setChecksum(plan.name, plan.checksum);
}

/** The plan's hooks and the command line's for one run of `apply` or `rollback` on the plan's table. */
export function sessionHooks(session: PlanSession, facts: PlanFacts, action: 'apply' | 'rollback'): PlanHooks {
  const { plan, options, log } = session;
  return new PlanHooks({ plan, table: display(facts.table), action, databaseUrl: options.databaseUrl, cli: options.hooks, log });
}

/** What running a phase needs, from the plan and its recorded facts (the program: gate.ts's currentProgram); `hooks` hear the backfill's progress too. */
export function phaseInput(session: PlanSession, facts: PlanFacts, tableOid: number, hooks?: PlanHooks): { input: PhaseInput } {
  const { client, store, plan, log, options, lease } = session;
  const ctx = runContext({
    client,
    stillHeld: () => lease.stillHeld(),
    connection: { databaseUrl: options.databaseUrl },
    guards: plan.guards,
    log,
    table: { oid: tableOid, display: display(facts.table) },
  });
  const input: PhaseInput = {
    ctx,
    store,
    plan,
    facts,
    change: resolveChange(plan.change, facts),
    names: objectNames(plan.name, facts),
    onProgress:
      hooks && options.onProgress
        ? (progress) => {
            options.onProgress!(progress);
            hooks.onProgress(progress);
          }
        : (hooks?.onProgress ?? options.onProgress),
  };
  return { input };
}

/** The table's current oid (0 when it no longer exists), for lock diagnostics. */
export async function tableOid(client: Client, facts: PlanFacts): Promise<number> {
  const { rows } = await client.query<{ oid: number | null }>(`SELECT to_regclass($1)::oid::int8::float8 AS oid`, [qualified(facts.table)]);
  return rows[0]?.oid ?? 0;
}
