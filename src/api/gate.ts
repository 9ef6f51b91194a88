import { compileProgram } from '../changes/program.js';
import { resolveChange } from '../changes/kinds/registry.js';
import { objectNames, syncFunctions, syncTriggers, type SyncMode } from '../changes/sql-objects.js';
import { withTransaction, type Client } from '../db/client.js';
import { ident } from '../db/ident.js';
import type { Action, Phase } from '../phases/phases.js';
import type { Plan } from '../plan/types.js';
import type { PhaseProgram } from '../changes/steps.js';
import type { PlanState } from '../state/store.js';
import { DriftError, findDrift, type DriftProblem } from './drift.js';
import { lookForOldCode, OldCodeError, oldCodeWatch, type OldCodeActivity } from './old-code.js';
import type { PlanSession } from './session.js';
import { recordMetric } from '../telemetry.js';

/** The phases the old-code gate stands before: after them old code breaks, or its data is gone. */
export const GATED_PHASES: readonly Phase[] = ['stop-write', 'contract'];

/** Drift of a started plan (see drift.ts), compiled from the plan and its recorded facts. */
export async function driftOf(client: Client, plan: Plan, state: PlanState): Promise<DriftProblem[]> {
  const change = resolveChange(plan.change, state.facts);
  return findDrift(client, state, compileProgram(plan, state.facts), change, objectNames(plan.name, state.facts));
}

/**
 * The plan's phase program compiled with the gate's current generation, so a
 * phase that redefines the sync functions keeps the mark's session setting
 * (read again before each phase: the gate may have started a generation).
 */
export async function currentProgram(session: PlanSession, state: PlanState): Promise<PhaseProgram> {
  const { generation } = await oldCodeWatch(session.client, session.store.schema, session.plan.name, state.startedAt);
  return compileProgram(session.plan, state.facts, generation);
}

/** The phase after which the gate watches: from here old code may run beside new code, and stop-write waits for it to go. */
const WATCH_AFTER: readonly Phase[] = ['switch-read'];

/**
 * Start a new generation of the old-code gate's watch: the sync functions
 * are redefined (CREATE OR REPLACE FUNCTION, in the mode they are in) with a
 * mark whose session setting carries the new generation, so every session,
 * whichever client it serves now, records again on its next old-side write;
 * the generation and its start are stored with them, in one transaction.
 *
 * CREATE OR REPLACE FUNCTION updates the function's row in pg_proc and takes
 * no lock on the table or its trigger (it locks only the pg_proc row it
 * updates). A statement that calls the function never locks it, so no
 * application write waits; each session recompiles the function on its next
 * call after the commit (plpgsql checks the row's version).
 * The start is taken last, just before the commit: sessions see the new
 * function only from the commit on, so this keeps the one window in which a
 * session recorded in the old generation writes unrecorded down to the
 * commit itself.
 *
 * Nothing happens for a plan without sync functions (a metadata-only retype,
 * a drop) or a state schema older than version 8 (ensure() upgrades it first).
 */
export async function startOldCodeGeneration(client: Client, schema: string, plan: Plan, state: PlanState): Promise<number | null> {
  if (state.facts.retype?.metadataOnly) return null;
  const { generation } = await oldCodeWatch(client, schema, plan.name, state.startedAt);
  const next = generation + 1;
  const names = objectNames(plan.name, state.facts, next);
  const [first] = syncTriggers(names, state.facts);
  if (!first) return null;
  const { rows } = await client.query<{ mode: string | null }>(
    `SELECT substring(prosrc from '-- pgshift sync, mode (\\S+)') AS mode FROM pg_proc WHERE oid = to_regprocedure($1)`,
    [`${first.fn}()`],
  );
  const mode = rows[0]?.mode;
  // No sync function (dropped by hand: drift says so), or one pgshift did not write: nothing to redefine.
  if (!isSyncMode(mode)) return null;
  const change = resolveChange(plan.change, state.facts);
  return withTransaction(client, async () => {
    await client.query(`SET LOCAL lock_timeout = ${plan.guards.lockTimeoutMs}`);
    for (const sql of syncFunctions(change, names, state.facts, mode)) await client.query(sql);
    await client.query(
      `UPDATE ${ident(schema)}.plans SET old_code_generation = $2, old_code_generation_at = clock_timestamp() WHERE name = $1 AND old_code_generation = $3`,
      [plan.name, next, generation],
    );
    return next;
  });
}

const SYNC_MODES: readonly string[] = ['two-way', 'two-way-defaults', 'one-way'] satisfies SyncMode[];
const isSyncMode = (mode: string | null | undefined): mode is SyncMode => mode != null && SYNC_MODES.includes(mode);

/** After `phase` was applied: start watching afresh when it is one the gate watches after (see {@link startOldCodeGeneration}). */
export async function watchAfter(session: PlanSession, state: PlanState, phase: Phase): Promise<void> {
  const { client, store, plan, log } = session;
  if (!WATCH_AFTER.includes(phase) || plan.guards.oldCodeQuietMs <= 0) return;
  await store.ensure();
  const generation = await startOldCodeGeneration(client, store.schema, plan, state);
  if (generation !== null) log.info({ phase, generation }, `old-code gate: watching for old-code writes afresh (generation ${generation})`);
}

/** Old-code activity of a started plan; `record` (runners only) stores what pg_stat_statements showed. */
export async function oldCodeOf(client: Client, schema: string, plan: Plan, state: PlanState, record: boolean): Promise<OldCodeActivity | null> {
  if (state.facts.retype?.metadataOnly) return null;
  return lookForOldCode(
    client,
    schema,
    {
      plan: plan.name,
      table: state.facts.table,
      change: resolveChange(plan.change, state.facts),
      startedAt: state.startedAt,
      quietMs: plan.guards.oldCodeQuietMs,
    },
    record,
  );
}

/**
 * Before a runner moves a started plan: refuse a drifted plan (exit 2), or
 * with `--force` go on with a warning (the phases it runs are recorded as
 * forced). Each apply also takes a look for old code, which stores what
 * pg_stat_statements showed, so a later look sees only what ran since.
 */
export async function checkBeforeMoving(session: PlanSession, state: PlanState, action: Action): Promise<void> {
  const { client, store, plan, log, options } = session;
  const drift = await driftOf(client, plan, state);
  if (drift.length) {
    const error = new DriftError(plan.name, state.phase, drift);
    if (!options.force) throw error;
    log.warn({ drift }, `moving a drifted plan (--force): ${error.message}`);
  }
  if (action === 'apply') {
    await store.ensure();
    await oldCodeOf(client, store.schema, plan, state, true);
  }
}

/**
 * Right before `stop-write` or `contract`: refuse (exit 2) while old code
 * may be active (a write recorded since the current generation started, a
 * statement seen within `guards.old_code_quiet`, or a generation younger
 * than that), or with `--force` go on with a warning. A refusal that saw
 * writes starts a new generation, so the next check measures afresh. Checked before each such phase, so a run that takes a plan
 * through several phases waits here too.
 */
export async function oldCodeGate(session: PlanSession, state: PlanState, phase: Phase): Promise<void> {
  const { client, store, plan, log, options } = session;
  if (!GATED_PHASES.includes(phase) || plan.guards.oldCodeQuietMs <= 0) return;
  await store.ensure();
  const activity = await oldCodeOf(client, store.schema, plan, state, true);
  recordMetric('gateState', activity?.recent ? 1 : 0, { plan: plan.name, phase });
  if (!activity?.recent) return;
  // Writes were seen: measure afresh, so the next look asks only about writes after this one.
  if (activity.writers.length) await startOldCodeGeneration(client, store.schema, plan, state);
  const error = new OldCodeError(plan.name, phase, activity);
  if (!options.force) throw error;
  log.warn({ oldCode: activity }, `going past the old-code gate (--force): ${error.message}`);
}
