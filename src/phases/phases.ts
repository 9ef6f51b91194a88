/** The six phases, in order. One phase per release. */
export const PHASES = ['expand', 'dual-write', 'backfill', 'switch-read', 'stop-write', 'contract'] as const;
export type Phase = (typeof PHASES)[number];

/** Plan statuses, as stored in `pgshift.plans.status`. */
export const STATUSES = ['in_progress', 'failed', 'complete', 'rolled_back'] as const;
export type Status = (typeof STATUSES)[number];

export type Action = 'apply' | 'rollback';

/** Is this string a phase name? */
export function isPhase(value: string): value is Phase {
  return (PHASES as readonly string[]).includes(value);
}

/** 0-based position; -1 for "nothing applied". */
export function phaseIndex(phase: Phase | null): number {
  return phase === null ? -1 : PHASES.indexOf(phase);
}

/** The phase after `phase` (null = none applied yet), or null after `contract`. */
export function nextPhase(phase: Phase | null): Phase | null {
  return PHASES[phaseIndex(phase) + 1] ?? null;
}

/** The phase before `phase`, or null before `expand`. */
export function previousPhase(phase: Phase): Phase | null {
  return PHASES[phaseIndex(phase) - 1] ?? null;
}

/** Phases to apply to go from `current` to `target`, in order; empty when already there or past it. */
export function phasesToApply(current: Phase | null, target: Phase | 'next'): Phase[] {
  const from = phaseIndex(current) + 1;
  const to = target === 'next' ? from : phaseIndex(target);
  return PHASES.slice(from, to + 1);
}

/** Phases to roll back from `current` down to and including `target`, newest first. */
export function phasesToRollBack(current: Phase | null, target: Phase | 'current'): Phase[] {
  if (current === null) return [];
  const from = phaseIndex(current);
  const to = target === 'current' ? from : phaseIndex(target);
  return PHASES.slice(to, from + 1).reverse();
}
