import { PlanError } from '../errors.js';
import { inFlight, type BackfillControl } from '../state/store.js';
import { withState, type RunOptions } from './session.js';

/** What `tune` may change of a running backfill; each as in a plan file's `backfill:` (durations in ms). */
export interface Tuning {
  readonly targetBatchMs?: number;
  readonly pauseMs?: number;
  readonly workers?: number;
  readonly maxReplicaLagMs?: number;
}

/**
 * Pause a plan's backfill: the walk (every worker) stops before its next
 * batch and writes nothing until `resume`; a runner started later finds it
 * paused. Recorded in the state schema, so it works from any machine, with
 * no connection to the runner. The plan must be in flight.
 */
export function pause(planName: string, options: RunOptions = {}): Promise<BackfillControl> {
  return steer(planName, { paused: true }, options);
}

/** Let a paused backfill go on from its checkpoint. */
export function resume(planName: string, options: RunOptions = {}): Promise<BackfillControl> {
  return steer(planName, { paused: false }, options);
}

/** Change a backfill's settings from its next batch on; they hold until the plan ends or is tuned again. */
export function tune(planName: string, tuning: Tuning, options: RunOptions = {}): Promise<BackfillControl> {
  if (!Object.values(tuning).some((v) => v !== undefined)) {
    throw new PlanError(`tune ${planName}: give at least one of --target-batch-ms, --pause, --workers, --max-replica-lag`);
  }
  return steer(planName, tuning, options);
}

async function steer(planName: string, change: Partial<Omit<BackfillControl, 'changedAt' | 'changedBy'>>, options: RunOptions): Promise<BackfillControl> {
  return withState(options, async (_client, store) => {
    const state = await store.get(planName);
    if (!inFlight(state)) {
      throw new PlanError(
        `plan "${planName}" is not in flight (${state ? state.status : 'never started'}): only a started plan's backfill can be paused or tuned`,
      );
    }
    // An older state schema has no steering table yet: bring it up to date (what apply does first, too).
    await store.ensure();
    return store.steer(planName, change);
  });
}
