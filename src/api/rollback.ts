import { PlanError } from '../errors.js';
import { phaseIndex, phasesToRollBack, previousPhase, type Phase } from '../phases/phases.js';
import { runPrivilegeProblems } from '../plan/phase-privileges.js';
import { nameClashes } from '../plan/name-clash.js';
import { claimedColumns } from '../plan/queue.js';
import type { Plan } from '../plan/types.js';
import { runPhaseSteps } from '../runner/run-phase.js';
import type { PlanOutcome } from './apply.js';
import { recordPhase } from './record.js';
import { checkBeforeMoving, currentProgram } from './gate.js';
import { checkChecksum, phaseInput, sessionHooks, tableOid, withPlanSession, type PlanSession, type RunOptions } from './session.js';
import type { PlanState } from '../state/store.js';

/**
 * Undo the current phase (`current`), or every phase down to and including
 * `target`, newest first. A phase whose apply failed part-way is undone
 * first. `contract` is undone while its archive is kept (see
 * {@link refuseUnlessArchived}): the old columns get their names back and
 * their values from `reverse`.
 */
export async function rollback(plan: Plan, target: Phase | 'current' = 'current', options: RunOptions = {}): Promise<PlanOutcome> {
  return withPlanSession(plan, options, async (session) => {
    const { client, store, log } = session;
    const state = await store.get(plan.name);
    if (!state || state.status === 'rolled_back') return { plan: plan.name, from: null, to: null, phases: [] };
    await checkChecksum(session, state);
    const current = state.phase;
    const halfApplied = state.unfinishedAction === 'apply' ? state.unfinishedPhase : null;
    if (state.status === 'complete' || halfApplied === 'contract') await refuseUnlessArchived(session, state);
    // The highest phase with anything applied: a half-applied one sits just above `current`.
    const top = halfApplied ?? current;
    const phases = top !== null && (target === 'current' || phaseIndex(target) <= phaseIndex(top)) ? phasesToRollBack(top, target) : [];
    if (!phases.length) return { plan: plan.name, from: current, to: current, phases: [] };

    const lacking = await runPrivilegeProblems(client, plan, state.facts.table, store.schema, phases);
    if (phases.includes('contract')) lacking.push(...(await nameClashes(client, plan, state.facts, ['contract'], true, 'rollback')));
    if (lacking.length) throw new PlanError(lacking);
    await checkBeforeMoving(session, state, 'rollback');
    const hooks = sessionHooks(session, state.facts, 'rollback');
    const { input } = phaseInput(session, state.facts, await tableOid(client, state.facts), hooks);
    const program = await currentProgram(session, state);
    const done: Phase[] = [];
    try {
      for (const phase of phases) {
        await hooks.observePhase(phase, () =>
          recordPhase(
            store,
            plan.name,
            phase,
            'rollback',
            async () => {
              log.info({ phase }, `rolling back ${phase}`);
              await runPhaseSteps(input, phase, 'rollback', program[phase].rollback);
              await session.lease.check();
              // The old columns are back under their names: nothing is archived any more.
              if (phase === 'contract') await store.forgetArchive(plan.name);
              await store.moveTo(plan.name, previousPhase(phase));
            },
            { forced: Boolean(options.force), lease: session.lease },
          ),
        );
        done.push(phase);
      }
    } catch (error) {
      return { plan: plan.name, from: current, to: (await store.get(plan.name))?.phase ?? null, phases: done, error: error as Error };
    } finally {
      await input.ctx.close();
      await hooks.flush();
    }
    return { plan: plan.name, from: current, to: (await store.get(plan.name))?.phase ?? null, phases: done };
  });
}

/**
 * contract archived the old columns; its rollback needs them. Refused
 * (exit 2) once they are purged, for a contract run by a pgshift that
 * dropped them, and while another plan is in flight on the table (the plan
 * would be in flight again beside it).
 */
async function refuseUnlessArchived(session: PlanSession, state: PlanState): Promise<void> {
  const { store, plan } = session;
  const archive = await store.archive(plan.name);
  if (archive?.purgedAt)
    throw new PlanError(
      `plan "${plan.name}": the old columns contract archived (${archive.columns.map((c) => c.archive).join(', ')}) were dropped ${archive.purgedAt.toISOString()} ` +
        '(plan purge, or contract.keep ran out), so contract cannot be rolled back. Write a new plan to go back, or restore from a backup.',
    );
  // A kind whose contract keeps what it replaced (constrain, add, index) has nothing archived to need.
  const archives = (await currentProgram(session, state)).contract.apply.some((s) => s.kind === 'record-archive');
  if (archives && state.status === 'complete' && !archive?.archivedAt)
    throw new PlanError(
      `plan "${plan.name}" reached contract, which dropped the old columns (a pgshift before contract archived them): their data is gone and it cannot be rolled back. ` +
        'Write a new plan to go back, or restore from a backup.',
    );
  // Back in flight, the plan claims its columns again: not while another plan in flight holds one of them.
  const columns = claimedColumns(plan, state.facts);
  const other = await store.inFlightOverlapping(state.table, columns, plan.name);
  if (other)
    throw new PlanError(
      `plan "${plan.name}": plan "${other.name}" is in flight on ${state.table} (at ${other.phase ?? 'no phase'}) with a column of this one; roll it back or finish it before rolling back contract`,
    );
  if (state.status === 'complete') await store.claimAgain(plan.name, state.table, columns);
}
