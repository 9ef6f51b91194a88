import { kindOf, resolveChange } from '../changes/kinds/registry.js';
import { objectNames } from '../changes/sql-objects.js';
import { verifyRows, type VerifyResult } from '../backfill/verify.js';
import { PlanError } from '../errors.js';
import { phaseIndex } from '../phases/phases.js';
import type { Plan } from '../plan/types.js';
import type { DriftProblem } from './drift.js';
import { driftOf } from './gate.js';
import { withOverrides, withState, type RunOptions } from './session.js';

/** What `verify` found: rows that differ, and objects not as the plan's phase should have them. */
export interface VerifyReport extends VerifyResult {
  readonly drift: readonly DriftProblem[];
}

/**
 * Count the rows where old and new columns disagree (0 = ok). Read-only: it
 * takes no plan lock and can run beside a backfill. Also reports drift
 * (see drift.ts). Needs the plan to be
 * between `dual-write` and `stop-write`, when both sides exist.
 */
export async function verify(plan: Plan, options: RunOptions = {}): Promise<VerifyReport> {
  return withState(options, async (client, store) => {
    const state = await store.get(plan.name);
    const at = state && state.status !== 'rolled_back' ? state.phase : null;
    // A kind with a program of its own (an in-place retype, a drop) keeps no second side to compare.
    if (at && kindOf(plan.change).program?.(plan.change, state!.facts, plan.name)) return { differing: 0, sampleKeys: [], rowsChecked: 0, drift: [] };
    if (!state || phaseIndex(at) < phaseIndex('dual-write') || at === 'contract') {
      throw new PlanError(`plan "${plan.name}" is at ${at ?? 'no phase'}: verify needs both sides and the functions, from dual-write to stop-write`);
    }
    const p = withOverrides(plan, options.guards);
    const drift = state.checksum === plan.checksum ? await driftOf(client, p, state) : [];
    return { ...(await verifyRows(client, state.facts, resolveChange(p.change, state.facts), objectNames(p.name, state.facts), p.guards)), drift };
  });
}
