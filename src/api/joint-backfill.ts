import type { BackfillInput } from '../backfill/backfill.js';
import { planTransactionSettings } from '../backfill/plan-transaction.js';
import type { PlanFacts } from '../changes/model.js';
import type { PhaseProgram } from '../changes/steps.js';
import { PlanBusyError } from '../errors.js';
import { phaseIndex, type Phase } from '../phases/phases.js';
import type { Plan } from '../plan/types.js';
import type { BackfillState, PlanState } from '../state/store.js';
import { currentProgram } from './gate.js';
import { phaseInput, tableOid, withPlanSession, type PlanSession } from './session.js';

/** What one plan's side of a walk needs to agree on with the other's. */
interface WalkShape {
  readonly facts: PlanFacts;
  readonly plan: Plan;
  readonly program: PhaseProgram;
  readonly backfill: BackfillState | null;
  readonly ranges: number;
}

/**
 * Run `fn` with the plans of this `apply` run that may be walked alongside
 * `session`'s backfill (see `BackfillInput.alongside`), each under its own
 * lease, held until `fn` returns. A partner is a plan given to the same run,
 * later in its order, on the same table, at `dual-write` with `backfill`
 * next and within the run's target, unedited, and whose walk would be the
 * same one: the same key and transaction settings, a plain table walked by
 * one worker, the shared backfill phase (a walk, then its own final check),
 * and either no backfill yet on both sides or both at the same checkpoint
 * (a walk killed half-way resumes as one). Each partner is marked as
 * applying `backfill` before the walk, as its own run would: a runner
 * killed mid-walk leaves it saying so, and its checkpoint says where the
 * walk stood. Its phase is recorded, and its final check run, by its own
 * turn in the same run, which finds its walk done. A partner that cannot
 * be opened (another runner holds its lease) is left to walk alone.
 */
export async function withBackfillPartners<T>(
  session: PlanSession,
  state: PlanState,
  target: Phase | 'next',
  later: readonly Plan[],
  fn: (partners: readonly BackfillInput[]) => Promise<T>,
): Promise<T> {
  const { store } = session;
  const self = await shapeOf(session, state);
  if (!walkable(self)) return fn([]);
  if (target !== 'next' && phaseIndex(target) < phaseIndex('backfill')) return fn([]);
  const candidates: Plan[] = [];
  for (const plan of later) {
    const s = await store.get(plan.name);
    if (s && s.table === state.table && ready(s, plan)) candidates.push(plan);
  }
  const partners: BackfillInput[] = [];
  const closers: (() => Promise<void>)[] = [];
  const open = async (i: number): Promise<T> => {
    if (i === candidates.length) return fn(partners);
    let entered = false;
    try {
      return await withPlanSession(candidates[i]!, session.options, async (other) => {
        entered = true;
        const s = await other.store.get(other.plan.name);
        if (!s || !ready(s, other.plan)) return open(i + 1);
        const shape = await shapeOf(other, s);
        if (!walkable(shape) || !sameWalk(self, shape)) return open(i + 1);
        await other.store.markUnfinished(other.plan.name, 'backfill', 'apply');
        const { input } = phaseInput(other, shape.facts, await tableOid(other.client, shape.facts));
        partners.push(input);
        closers.push(() => input.ctx.close());
        return open(i + 1);
      });
    } catch (error) {
      // A partner that cannot be opened (another runner holds it, or anything else) walks alone in its own turn, which says why.
      if (entered) throw error;
      session.log.info(
        { partner: candidates[i]!.name, err: (error as Error).message },
        `backfill of ${session.plan.name}: ${candidates[i]!.name} walks alone${error instanceof PlanBusyError ? ' (another runner holds it)' : ''}`,
      );
      return open(i + 1);
    }
  };
  try {
    return await open(0);
  } finally {
    for (const close of closers) await close();
  }
}

/** In flight at `dual-write`, with `backfill` next (or half done), and its file as it started. */
function ready(s: PlanState, plan: Plan): boolean {
  return (
    s.status === 'in_progress' &&
    s.phase === 'dual-write' &&
    (s.unfinishedAction === null || (s.unfinishedAction === 'apply' && s.unfinishedPhase === 'backfill')) &&
    s.checksum === plan.checksum
  );
}

async function shapeOf(session: PlanSession, state: PlanState): Promise<WalkShape> {
  return {
    facts: state.facts,
    plan: session.plan,
    program: await currentProgram(session, state),
    backfill: await session.store.backfill(session.plan.name),
    ranges: (await session.store.ranges(session.plan.name)).length,
  };
}

/** One walk of a plain table by one worker, as the shared backfill phase runs it, not finished yet. */
function walkable(w: WalkShape): boolean {
  const steps = w.program.backfill.apply.map((s) => s.kind).join(',');
  return (
    steps === 'backfill,verify' &&
    // A walk that fixes a column in place (constrain) writes another UPDATE than a fill: it walks alone.
    w.program.backfill.apply.every((s) => s.kind !== 'backfill' || !s.inPlace) &&
    !w.facts.partitioning &&
    (w.plan.backfill.workers ?? 1) === 1 &&
    w.ranges === 0 &&
    !w.backfill?.finishedAt &&
    !w.backfill?.partitions
  );
}

/** The two walks would be the same one: same key, same settings, and both fresh or at the same checkpoint. */
function sameWalk(a: WalkShape, b: WalkShape): boolean {
  const same = (x: unknown, y: unknown): boolean => JSON.stringify(x) === JSON.stringify(y);
  if (!same(a.facts.key, b.facts.key) || planTransactionSettings(a.facts, true) !== planTransactionSettings(b.facts, true)) return false;
  if (!a.backfill || !b.backfill) return !a.backfill && !b.backfill;
  return same(a.backfill.upperKey, b.backfill.upperKey) && same(a.backfill.lastKey, b.backfill.lastKey) && a.backfill.sinceXid === b.backfill.sinceXid;
}
