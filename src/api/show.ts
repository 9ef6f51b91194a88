import { compileProgram } from '../changes/program.js';
import { archivedBy, purgeSteps } from '../changes/archive.js';
import { PHASES, type Phase } from '../phases/phases.js';
import { checkAgainstCatalog } from '../plan/catalog-check.js';
import type { Plan } from '../plan/types.js';
import type { Step } from '../changes/steps.js';
import { inFlight } from '../state/store.js';
import { oldCodeWatch } from './old-code.js';
import { withState, type RunOptions } from './session.js';

/** One phase as `plan show` prints it. */
export interface ShownPhase {
  readonly phase: Phase;
  readonly apply: readonly Step[];
  readonly rollback: readonly Step[];
  /** contract: what `plan purge`, or the first apply after `contract.keep`, runs on the archive. */
  readonly purge?: readonly Step[] | undefined;
}

/**
 * The steps (SQL, locks, transaction or not) each phase would run, without
 * running anything. Compiled from the facts recorded at start (and the
 * old-code gate's generation) when the plan is in flight, else from the live
 * catalog after validating the plan.
 */
export async function show(plan: Plan, phase?: Phase, options: RunOptions = {}): Promise<ShownPhase[]> {
  return withState(options, async (client, store) => {
    const state = await store.get(plan.name);
    const started = inFlight(state) || state?.status === 'complete';
    const facts = started ? state!.facts : await checkAgainstCatalog(client, plan, store.schema, { privileges: false });
    // A started plan's sync functions carry the old-code gate's current generation in their mark.
    const generation = started ? (await oldCodeWatch(client, store.schema, plan.name, state!.startedAt)).generation : 0;
    const program = compileProgram(plan, facts, generation);
    const purge = purgeSteps(facts.table, archivedBy(program), facts.views);
    return PHASES.filter((p) => !phase || p === phase).map((p) => ({ phase: p, ...program[p], ...(p === 'contract' && purge.length ? { purge } : {}) }));
  });
}
