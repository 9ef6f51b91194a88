import { PHASES, phaseIndex, previousPhase, type Phase } from '../phases/phases.js';

/** Which way a rehearsal step moves the plans. */
export type Direction = 'forward' | 'back';

/** One step of a rehearsal: a phase applied or rolled back, and what runs against the schema it leaves. */
export interface ScheduledStep {
  readonly direction: Direction;
  readonly action: 'apply' | 'rollback';
  /** The phase applied or rolled back. */
  readonly phase: Phase;
  /** The phase the plans stand at afterwards (null: none applied). */
  readonly at: Phase | null;
  readonly runOld: boolean;
  readonly runNew: boolean;
  /** Both sides must agree here, so `verify` must find 0 differing rows. */
  readonly verify: boolean;
  /**
   * A step that only brings the plans back to where contract can be applied
   * after the way back: the same schema was already rehearsed going forward,
   * so nothing runs, but its apply must still succeed.
   */
  readonly quiet: boolean;
}

/** Old code may run until reads are switched, and again wherever a rollback brings the schema back below it. */
const OLD_UNTIL: Phase = 'switch-read';

/** Where new code runs by default: from switch-read on (design §2). */
export const DEFAULT_NEW_FROM: Phase = 'switch-read';

/** May the old release run with the plans at `at`? */
export function oldMayRun(at: Phase | null): boolean {
  return phaseIndex(at) <= phaseIndex(OLD_UNTIL);
}

/** May the new release, shipped from `newFrom` on, run with the plans at `at`? */
export function newMayRun(at: Phase | null, newFrom: Phase = DEFAULT_NEW_FROM): boolean {
  return at !== null && phaseIndex(at) >= phaseIndex(newFrom);
}

/**
 * Must old and new columns agree with the plans at `at`? From backfill
 * through stop-write; and at dual-write reached going back, since rolling
 * back the backfill undoes nothing and the trigger still keeps both in sync.
 */
export function mustAgree(at: Phase | null, direction: Direction): boolean {
  if (at === 'dual-write') return direction === 'back';
  return at !== null && phaseIndex(at) >= phaseIndex('backfill') && phaseIndex(at) <= phaseIndex('stop-write');
}

/**
 * The rehearsal, as data: forward from expand to stop-write, back phase by
 * phase to no phase at all, then forward again to contract (which cannot be
 * rolled back, so it is rehearsed last, once).
 */
export function rehearsalSchedule(newFrom: Phase = DEFAULT_NEW_FROM): ScheduledStep[] {
  const step = (direction: Direction, action: 'apply' | 'rollback', phase: Phase, quiet = false): ScheduledStep => {
    const at = action === 'apply' ? phase : previousPhase(phase);
    return {
      direction,
      action,
      phase,
      at,
      runOld: !quiet && oldMayRun(at),
      runNew: !quiet && newMayRun(at, newFrom),
      verify: !quiet && mustAgree(at, direction),
      quiet,
    };
  };
  const upToStopWrite = PHASES.slice(0, phaseIndex('stop-write') + 1);
  return [
    ...upToStopWrite.map((p) => step('forward', 'apply', p)),
    ...[...upToStopWrite].reverse().map((p) => step('back', 'rollback', p)),
    ...upToStopWrite.map((p) => step('forward', 'apply', p, true)),
    step('forward', 'apply', 'contract'),
  ];
}
