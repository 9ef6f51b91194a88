import { compileProgram } from '../changes/program.js';
import { resolveChange } from '../changes/registry.js';
import { objectNames } from '../changes/sql-objects.js';
import type { Client } from '../db/client.js';
import { phaseIndex, type Action, type Phase } from '../phases/phases.js';
import type { Plan } from '../plan/types.js';
import type { PlanState } from '../state/store.js';
import { DriftError, findDrift, type DriftProblem } from './drift.js';
import { lookForOldCode, OldCodeError, type OldCodeActivity } from './old-code.js';
import type { PlanSession } from './session.js';

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
    { plan: plan.name, table: state.facts.table, change: resolveChange(plan.change, state.facts), startedAt: state.startedAt, quietMs: plan.guards.oldCodeQuietMs },
    record,
  );
}

/**
 * Before a runner moves a started plan: refuse a drifted plan (exit 2), and
 * before `stop-write` or `contract`, refuse while old code was seen within
 * `guards.old_code_quiet` (exit 2). `--force` goes past both with a warning;
 * the phases it runs are recorded as forced. Each apply also refreshes the
 * pg_stat_statements snapshot the gate compares against.
 */
export async function checkBeforeMoving(session: PlanSession, state: PlanState, phases: readonly Phase[], action: Action): Promise<void> {
  const { client, store, plan, log, options } = session;
  const drift = await driftOf(client, plan, state);
  if (drift.length) {
    const error = new DriftError(plan.name, state.phase, drift);
    if (!options.force) throw error;
    log.warn({ drift }, `moving a drifted plan (--force): ${error.message}`);
  }
  if (action !== 'apply' || phaseIndex(state.phase) < phaseIndex('expand')) return;
  await store.ensure();
  const activity = await oldCodeOf(client, store.schema, plan, state, true);
  const gated = phases.find((p) => GATED_PHASES.includes(p));
  if (!gated || !activity?.recent) return;
  const error = new OldCodeError(plan.name, gated, activity);
  if (!options.force) throw error;
  log.warn({ oldCode: activity }, `going past the old-code gate (--force): ${error.message}`);
}
