import { nextPhase, phaseIndex, type Phase, type Status } from '../phases/phases.js';
import type { DriftProblem } from './drift.js';
import { driftOf, oldCodeOf } from './gate.js';
import type { OldCodeActivity } from './old-code.js';
import type { Plan } from '../plan/types.js';
import type { ArchiveState, BackfillControl, BackfillState, LastEvent } from '../state/store.js';
import type { ArchivedColumn } from '../changes/steps.js';
import { withOverrides, withState, type RunOptions } from './session.js';
import { waitingBehind, type Waiting } from './queue.js';
import { releaseOrder } from '../plan/queue.js';
import { inFlight } from '../state/store.js';

/** Backfill progress: rows done of the estimate, and while it runs, its rate and time to go. */
export interface BackfillStatus {
  readonly done: number;
  readonly total: number;
  readonly finished: boolean;
  /** Rows per second since the backfill started (null before its first checkpoint or once finished). */
  readonly rowsPerSecond: number | null;
  /** Seconds left at that rate (null when unknown or finished). */
  readonly etaSeconds: number | null;
}

/** A plan's archived old columns. */
export interface ArchiveStatus {
  /** Each old column and the name it is archived under. */
  readonly columns: readonly ArchivedColumn[];
  /** When the first apply drops them (`contract.keep`). */
  readonly until: Date | null;
  /** When they were dropped (`plan purge` or an apply after `until`); then contract cannot be rolled back. */
  readonly purgedAt: Date | null;
}

/** One line of `migrate plan status`. */
export interface PlanStatus {
  readonly plan: string;
  readonly table: string;
  /** Last applied phase, or null. */
  readonly phase: Phase | null;
  /** `not_started` when the database has never seen the plan. */
  readonly status: Status | 'not_started';
  /** The phase `apply --phase next` would run, or null when complete. */
  readonly next: Phase | null;
  readonly backfill: BackfillStatus | null;
  readonly lastEvent: LastEvent | null;
  readonly lastError: string | null;
  /** A phase that started and did not finish (it failed, or its runner was killed, or it is running now). */
  readonly unfinished: { readonly phase: Phase; readonly action: 'apply' | 'rollback' } | null;
  /** The plan file's checksum differs from the one recorded at start. */
  readonly edited: boolean;
  /** Objects not as the phase should have them (see docs/gate-and-drift.md); null when not checked (no plan file, not started). */
  readonly drift: readonly DriftProblem[] | null;
  /** The old-code gate's facts, from switch-read on (null before, or without the plan file). */
  readonly oldCode: OldCodeActivity | null;
  /** How its backfill is steered (`pause`, `tune`): paused, and the settings recorded over the plan file's; null when never steered. */
  readonly steering: BackfillControl | null;
  /** What contract archived and until when (null when nothing is: before contract, or rolled back). */
  readonly archive: ArchiveStatus | null;
  /** For a plan that has not started: the plan it waits behind in the release order (null when it may start, or unknown without its file). */
  readonly waiting: Waiting | null;
}

/**
 * The state of each plan given (from files); with `includeUnlisted`, also
 * every plan the database knows that no file names, so nothing in flight
 * goes unseen. `queue` (default: `plans`) is the whole folder, whose release
 * order says what a plan not started waits behind.
 */
export async function status(plans: readonly Plan[], options: RunOptions = {}, includeUnlisted = false, queue: readonly Plan[] = plans): Promise<PlanStatus[]> {
  return withState(options, async (client, store) => {
    const states = new Map((await store.all()).map((s) => [s.name, s]));
    const backfills = await store.allBackfills();
    const events = await store.lastEvents();
    const archives = await store.allArchives();
    const names = new Set([...plans.map((p) => p.name), ...(includeUnlisted ? states.keys() : [])]);
    const order = releaseOrder(queue, { known: false });
    const claims = await store.claims();
    const rows: PlanStatus[] = [];
    for (const name of [...names].sort()) {
      const file = plans.find((p) => p.name === name);
      const plan = file ? withOverrides(file, options.guards) : undefined;
      const state = states.get(name);
      const bf = backfills.get(name);
      const phase = state && state.status !== 'rolled_back' ? state.phase : null;
      const checked = plan && state && state.status !== 'rolled_back' && state.checksum === plan.checksum ? state : null;
      rows.push({
        plan: name,
        table: state?.table ?? (plan ? [plan.table.schema, plan.table.name].filter(Boolean).join('.') : ''),
        phase,
        status: state?.status ?? 'not_started',
        next: state?.unfinishedAction === 'apply' ? state.unfinishedPhase : nextPhase(phase),
        unfinished: state?.unfinishedPhase ? { phase: state.unfinishedPhase, action: state.unfinishedAction! } : null,
        backfill: bf ? backfillStatus(bf) : null,
        lastEvent: events.get(name) ?? null,
        lastError: state?.lastError ?? null,
        edited: Boolean(plan && state && state.checksum !== plan.checksum && state.status !== 'rolled_back'),
        drift: checked ? await driftOf(client, plan!, checked) : null,
        oldCode: checked && phaseIndex(phase) >= phaseIndex('switch-read') ? await oldCodeOf(client, store.schema, plan!, checked, false) : null,
        steering: state && inFlight(state) ? await store.control(name) : null,
        archive: archiveStatus(state?.status === 'complete' ? archives.get(name) : undefined),
        waiting: plan && !inFlight(state ?? null) && state?.status !== 'complete' ? await waitingBehind(client, states, plan, order, claims) : null,
      });
    }
    return rows;
  });
}

function archiveStatus(a: ArchiveState | undefined): ArchiveStatus | null {
  return a?.archivedAt ? { columns: a.columns, until: a.keepUntil, purgedAt: a.purgedAt } : null;
}

function backfillStatus(bf: BackfillState): BackfillStatus {
  const total = Math.max(bf.rowsEstimated, bf.rowsDone);
  const seconds = (bf.updatedAt.getTime() - bf.startedAt.getTime()) / 1000;
  const running = bf.finishedAt === null && bf.rowsDone > 0 && seconds > 0;
  const rate = running ? bf.rowsDone / seconds : null;
  return {
    done: bf.rowsDone,
    total,
    finished: bf.finishedAt !== null,
    rowsPerSecond: rate === null ? null : Math.round(rate),
    etaSeconds: rate ? Math.round((total - bf.rowsDone) / rate) : null,
  };
}
