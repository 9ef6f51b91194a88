import type { ArchivedColumn } from '../changes/steps.js';
import { PlanError } from '../errors.js';
import type { Plan } from '../plan/types.js';
import { purgeArchive } from '../runner/archive.js';
import type { PlanState } from '../state/store.js';
import { phaseInput, tableOid, withPlanSession, type PlanSession, type RunOptions } from './session.js';

/** What `purge` dropped. */
export interface PurgeOutcome {
  readonly plan: string;
  /** The archived columns dropped now; empty when they already were. */
  readonly purged: readonly ArchivedColumn[];
}

/**
 * Drop the old columns the plan's contract archived, before `contract.keep`
 * runs out. After it, contract can no longer be rolled back. Refused (exit 2)
 * for a plan that has archived nothing.
 */
export async function purge(plan: Plan, options: RunOptions = {}): Promise<PurgeOutcome> {
  return withPlanSession(plan, options, async (session) => {
    const state = await session.store.get(plan.name);
    const archive = await session.store.archive(plan.name);
    if (!state || state.status !== 'complete' || !archive?.archivedAt)
      throw new PlanError(
        `plan "${plan.name}" has nothing archived (it is at ${state && state.status !== 'rolled_back' ? (state.phase ?? 'no phase') : 'no phase'}): ` +
          'purge drops the old columns contract archived, once contract has run',
      );
    if (archive.purgedAt) return { plan: plan.name, purged: [] };
    await dropArchive(session, state, archive.columns);
    return { plan: plan.name, purged: archive.columns };
  });
}

/**
 * For `apply`: drop a complete plan's archive once `contract.keep` has run
 * out (the database's clock decides); the columns dropped, or none.
 */
export async function purgeIfDue(session: PlanSession, state: PlanState): Promise<readonly ArchivedColumn[]> {
  if (state.status !== 'complete') return [];
  const archive = await session.store.archive(state.name);
  if (!archive?.due) return [];
  session.log.info({ columns: archive.columns }, `contract.keep of ${state.name} ran out: dropping ${archive.columns.map((c) => c.archive).join(', ')}`);
  await dropArchive(session, state, archive.columns);
  return archive.columns;
}

async function dropArchive(session: PlanSession, state: PlanState, columns: readonly ArchivedColumn[]): Promise<void> {
  const { input } = phaseInput(session, state.facts, await tableOid(session.client, state.facts));
  try {
    await purgeArchive(input.ctx, session.store, state.name, state.facts, columns);
  } finally {
    await input.ctx.close();
  }
}
