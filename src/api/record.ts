import type { Action, Phase } from '../phases/phases.js';
import type { StateStore } from '../state/store.js';

/**
 * Run one phase in one direction and record it: the phase is marked
 * unfinished before it starts (a killed runner leaves that mark), an event is
 * appended either way, and on failure the plan is marked failed with the
 * phase and error, so both `apply` and `rollback` know where to pick up.
 * `forced` marks the events of a run given `--force`.
 */
export async function recordPhase(
  store: StateStore,
  plan: string,
  phase: Phase,
  action: Action,
  fn: () => Promise<void>,
  forced = false,
): Promise<void> {
  const startedAt = new Date();
  await store.markUnfinished(plan, phase, action);
  try {
    await fn();
  } catch (error) {
    const message = (error as Error).message || String(error);
    // The connection may be what failed; the original error matters more than the record of it.
    await store.markFailed(plan, phase, action, message).catch(() => undefined);
    await store.event(plan, phase, action, startedAt, message, forced).catch(() => undefined);
    throw error;
  }
  await store.event(plan, phase, action, startedAt, null, forced);
}
