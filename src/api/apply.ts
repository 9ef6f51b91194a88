import { sqlState, SqlState } from '../db/client.js';
import { display } from '../db/ident.js';
import { PlanBusyError, PlanError, PgshiftError } from '../errors.js';
import { phaseIndex, phasesToApply, PHASES, type Phase } from '../phases/phases.js';
import { checkAgainstCatalog } from '../plan/catalog-check.js';
import { nameClashes, refuseNameClashes } from '../plan/name-clash.js';
import { runPrivilegeProblems } from '../plan/phase-privileges.js';
import { strictProblems, writableSchemaWarnings } from '../plan/writable-schemas.js';
import { INSUFFICIENT_PRIVILEGE } from '../plan/privileges.js';
import type { Plan } from '../plan/types.js';
import { runPhaseSteps, type PhaseInput } from '../runner/run-phase.js';
import { claimedColumns, releaseOrder } from '../plan/queue.js';
import { inFlight } from '../state/store.js';
import { waitingBehind, waitingText, type Waiting } from './queue.js';
import { checkChecksum, phaseInput, sessionHooks, tableOid, withPlanSession, type PlanSession, type RunOptions } from './session.js';
import { OldCodeError } from './old-code.js';
import { recordPhase } from './record.js';
import { withBackfillPartners } from './joint-backfill.js';
import { checkBeforeMoving, currentProgram, oldCodeGate, watchAfter } from './gate.js';
import { purgeIfDue } from './purge.js';
import type { ArchivedColumn } from '../changes/steps.js';

/** What `apply` or `rollback` did to one plan. */
export interface PlanOutcome {
  readonly plan: string;
  /** The phase the plan stood at before. */
  readonly from: Phase | null;
  /** The phase it stands at now. */
  readonly to: Phase | null;
  /** Phases applied or rolled back, in order; empty = nothing to do. */
  readonly phases: readonly Phase[];
  /** Set when the plan stopped on an error; the other plans still ran. */
  readonly error?: PgshiftError | Error | undefined;
  /** Set when the plan has not started because another must go first (see {@link Waiting}); not an error. */
  readonly waiting?: Waiting | undefined;
  /** Archived columns this run dropped, `contract.keep` having run out (`apply` of a complete plan). */
  readonly purged?: readonly ArchivedColumn[] | undefined;
}

/** `apply`'s options: a run's, and the whole folder's plans, which decide the order (see `releaseOrder`). */
export interface ApplyOptions extends RunOptions {
  /** Every plan of the folder (default: the plans given); an `after:` must then name one of them. */
  readonly queue?: readonly Plan[];
}

/**
 * Advance each plan to `target`: one phase (`next`), or every phase up to and
 * including the named one (a no-op when already there, so a retried pipeline
 * step is harmless). Plans run one after the other, in the folder's release
 * order (`releaseOrder`); a failing plan does not stop the others, and its
 * error is in its outcome. A plan that may not start yet (another sharing
 * a column of its table goes first, or one its `after:` names is not
 * contracted) is left waiting, which is not an error: a pipeline runs
 * `apply --phase next` at every release and each plan starts when its turn
 * comes. Plans of the run at one table's `backfill` together are filled by
 * one walk (`withBackfillPartners`), each finishing its phase in its turn.
 */
export async function apply(plans: readonly Plan[], target: Phase | 'next', options: ApplyOptions = {}): Promise<PlanOutcome[]> {
  const queue = releaseOrder(options.queue ?? plans, { known: options.queue !== undefined });
  const ordered = [...queue.filter((q) => plans.some((p) => p.name === q.name)), ...plans.filter((p) => !queue.some((q) => q.name === p.name))];
  const outcomes: PlanOutcome[] = [];
  for (const [i, plan] of ordered.entries()) {
    try {
      outcomes.push(await withPlanSession(plan, options, (session) => applyOne(session, target, queue, ordered.slice(i + 1))));
    } catch (error) {
      outcomes.push({ plan: plan.name, from: null, to: null, phases: [], error: error as Error });
    }
  }
  return outcomes;
}

async function applyOne(session: PlanSession, target: Phase | 'next', queue: readonly Plan[], later: readonly Plan[]): Promise<PlanOutcome> {
  const { client, store, plan, log } = session;
  let state = await store.get(plan.name);
  await checkChecksum(session, state);
  const writable = await writableSchemaWarnings(client, state?.facts.searchPath, store.schema);
  if (session.options.strict && writable.length) throw new PlanError(strictProblems(plan, writable));
  for (const w of writable) log.warn(w);
  const current = inFlight(state) || state?.status === 'complete' ? state!.phase : null;
  // A rollback that failed part-way left `current` half undone: apply it again first.
  const redo = state?.unfinishedAction === 'rollback' ? current : null;
  let phases = phasesToApply(current, target);
  if (redo) phases = target === 'next' ? [redo] : phaseIndex(target) >= phaseIndex(redo) ? [redo, ...phases] : [];
  if (!phases.length) {
    // The first apply after contract.keep drops what contract archived.
    const purged = state ? await purgeIfDue(session, state) : [];
    return { plan: plan.name, from: current, to: current, phases: [], ...(purged.length ? { purged } : {}) };
  }

  const started = inFlight(state);
  if (!started) {
    // Before the catalog check: a plan queued behind another may name columns that one has yet to make.
    const waiting = await waitingBehind(client, new Map((await store.all()).map((s) => [s.name, s])), plan, queue, await store.claims());
    if (waiting) {
      log.info({ waiting }, `${plan.name}: ${waitingText(waiting)}`);
      return { plan: plan.name, from: current, to: current, phases: [], waiting };
    }
    const facts = await checkAgainstCatalog(client, plan, store.schema, { rewriteViewsUnder: plan.guards });
    await refuseNameClashes(client, plan, facts, PHASES, false);
    if (!session.lease.isHeld) {
      // A database without state had no lease table: take the lease now, before the first write, and look again.
      await store.ensure();
      await session.lease.take();
      const now = await store.get(plan.name);
      if (inFlight(now) || now?.status === 'complete') {
        throw new PlanBusyError(plan.name, `a runner that started it while this one was checking the catalog (now at ${now!.phase ?? 'no phase'})`);
      }
    }
    // A whole-table plan claims every column the table has, so a column plan's start collides with it in the claims' key.
    const columns = claimedColumns(plan, facts);
    try {
      await store.start(plan.name, plan.change.kind, plan.checksum, facts, columns);
    } catch (error) {
      // Another plan on one of its columns started between our look and our insert (its claim on the column says so): wait behind it.
      if (sqlState(error) === SqlState.uniqueViolation) {
        const other = await store.inFlightOverlapping(display(facts.table), columns, plan.name);
        if (other) return { plan: plan.name, from: current, to: current, phases: [], waiting: { behind: other.name, at: other.phase, status: other.status } };
        throw new PlanError([
          { file: plan.file, path: 'table', message: `another plan in flight on ${display(facts.table)} claims one of ${columns.join(', ')}` },
        ]);
      }
      // A privilege the check above does not know of: still nothing changed but the state schema, so say it is input to fix.
      if (sqlState(error) === INSUFFICIENT_PRIVILEGE)
        throw new PlanError([{ file: plan.file, path: '', message: `cannot record the plan's start: ${(error as Error).message} (see docs/privileges.md)` }]);
      throw error;
    }
    state = (await store.get(plan.name))!;
    log.info({ table: display(facts.table) }, `started plan ${plan.name}`);
  }
  const facts = state!.facts;
  const lacking = await runPrivilegeProblems(client, plan, facts.table, store.schema, phases);
  if (started) lacking.push(...(await nameClashes(client, plan, facts, phases, true)));
  if (lacking.length) throw new PlanError(lacking);
  // A plan started by this run has nothing to drift from, and no old code to wait for yet.
  if (started) await checkBeforeMoving(session, state!, 'apply');
  const hooks = sessionHooks(session, facts, 'apply');
  const { input } = phaseInput(session, facts, await tableOid(client, facts), hooks);
  const done: Phase[] = [];
  try {
    for (const phase of phases) {
      await oldCodeGate(session, state!, phase).catch((error: unknown) => {
        if (error instanceof OldCodeError) hooks.gateRefused(phase, error);
        throw error;
      });
      const program = await currentProgram(session, state!);
      const run = async (alongside: readonly PhaseInput[]): Promise<void> =>
        hooks.observePhase(phase, () =>
          recordPhase(
            store,
            plan.name,
            phase,
            'apply',
            async () => {
              log.info({ phase }, `applying ${phase}`);
              await runPhaseSteps(alongsideOf(input, alongside), phase, 'apply', program[phase].apply);
              await session.lease.check();
              await store.moveTo(plan.name, phase);
            },
            { forced: Boolean(session.options.force), lease: session.lease },
          ),
        );
      // Other plans of this run at the same table's backfill are walked with this one: one walk fills them all.
      if (phase === 'backfill') await withBackfillPartners(session, (await store.get(plan.name))!, target, later, run);
      else await run([]);
      done.push(phase);
      await watchAfter(session, state!, phase);
    }
  } catch (error) {
    return { plan: plan.name, from: current, to: done.at(-1) ?? current, phases: done, error: error as Error };
  } finally {
    await input.ctx.close();
    await hooks.flush();
  }
  return { plan: plan.name, from: current, to: done.at(-1) ?? current, phases: done };
}

/** The phase's input with the plans walked alongside it, whose leases are checked with its own before every batch. */
function alongsideOf(input: PhaseInput, alongside: readonly PhaseInput[]): PhaseInput {
  if (!alongside.length) return input;
  const stillHeld = (): void => {
    input.ctx.stillHeld?.();
    for (const other of alongside) other.ctx.stillHeld?.();
  };
  return { ...input, ctx: { ...input.ctx, stillHeld }, alongside };
}
