import { compileProgram } from '../changes/program.js';
import { resolveChange } from '../changes/kinds/registry.js';
import { objectNames } from '../changes/sql-objects.js';
import type { Client } from '../db/client.js';
import type { Action, Phase } from '../phases/phases.js';
import type { Plan } from '../plan/types.js';
import type { PlanState } from '../state/store.js';
import { DriftError, findDrift, type DriftProblem } from './drift.js';
import { lookForOldCode, OldCodeError, type OldCodeActivity } from './old-code.js';
import type { PlanSession } from './session.js';
import { recordMetric } from '../telemetry.js';

/** The phases the old-code gate stands before: after them old code breaks, or its data is gone. */
export const GATED_PHASES: readonly Phase[] = ['stop-write', 'contract'];

/** Drift of a started plan (see drift.ts), compiled from the plan and its recorded facts. */
export async function driftOf(client: Client, plan: Plan, state: PlanState): Promise<DriftProblem[]> {
  const change = resolveChange(plan.change, state.facts);
  return findDrift(client, state, compileProgram(plan, state.facts), change, objectNames(plan.name, state.facts));
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
 * was seen within `guards.old_code_quiet`, or with `--force` go on with a
 * warning. Checked before each such phase, so a run that takes a plan
 * through several phases waits here too.
 */
export async function oldCodeGate(session: PlanSession, state: PlanState, phase: Phase): Promise<void> {
  const { client, store, plan, log, options } = session;
  if (!GATED_PHASES.includes(phase) || plan.guards.oldCodeQuietMs <= 0) return;
  await store.ensure();
  const activity = await oldCodeOf(client, store.schema, plan, state, true);
  recordMetric('gateState', activity?.recent ? 1 : 0, { plan: plan.name, phase });
  if (!activity?.recent) return;
  const error = new OldCodeError(plan.name, phase, activity);
  if (!options.force) throw error;
  log.warn({ oldCode: activity }, `going past the old-code gate (--force): ${error.message}`);
}
