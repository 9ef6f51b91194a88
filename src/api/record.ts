import type { Action, Phase } from '../phases/phases.js';
import { mustNotRecord, type PlanLease } from '../runner/plan-lock.js';
import type { StateStore } from '../state/store.js';

/**
 * Run one phase in one direction and record it: the phase is marked
 * unfinished before it starts (a killed runner leaves that mark), an event is
 * appended either way, and on failure the plan is marked failed with the
 * phase and error, so both `apply` and `rollback` know where to pick up.
 * `forced` marks the events of a run given `--force`. With a `lease`, the
 * runner first checks that the plan is still its own.
 */
export async function recordPhase(
  store: StateStore,
  plan: string,
  phase: Phase,
  action: Action,
  fn: () => Promise<void>,
  { forced = false, lease }: { forced?: boolean; lease?: PlanLease | undefined } = {},
): Promise<void> {
  const startedAt = new Date();
  // A runner that lost its lease or its session must not write the plan's state: another runner may own it now.
  await lease?.check();
  await store.markUnfinished(plan, phase, action);
  try {
    await fn();
  } catch (error) {
    if (mustNotRecord(error)) throw error;
    // The heartbeat found the lease taken over while this phase ran: its failure is not ours to record either.
    lease?.stillHeld();
    const message = (error as Error).message || String(error);
    // The connection may be what failed; the original error matters more than the record of it.
    await store.markFailed(plan, phase, action, message).catch(() => undefined);
    await store.event(plan, phase, action, startedAt, message, forced).catch(() => undefined);
    throw error;
  }
  await store.event(plan, phase, action, startedAt, null, forced);
}
