import { runBackfill, withAnalyzeBeside, type BackfillInput } from '../backfill/backfill.js';
import { verifyBackfill, verifyRows } from '../backfill/verify.js';
import { PlanError, VerificationError } from '../errors.js';
import type { Phase, Action } from '../phases/phases.js';
import { dropColumnIndexes } from './drop-indexes.js';
import { recordArchive, refillOld, restoreIndexes } from './archive.js';
import { runSqlStep } from './sql-step.js';
import type { Step } from '../changes/steps.js';
import { inSpan } from '../telemetry.js';

/** Everything a phase's steps may need: what a backfill needs is all of it. */
export type PhaseInput = BackfillInput;

/** Run one phase's steps in one direction, in order. Every step is idempotent, so a re-run after a failure is safe. */
export async function runPhaseSteps(input: PhaseInput, phase: Phase, action: Action, steps: readonly Step[]): Promise<void> {
  // The session's logger already carries the plan.
  const log = input.ctx.log.child({ phase, action });
  for (const step of steps) {
    const started = Date.now();
    const outcome = await inSpan(
      `pgshift step ${step.kind}`,
      { 'pgshift.plan': input.plan.name, 'pgshift.phase': phase, 'pgshift.action': action, 'pgshift.step': step.description },
      () => runStep({ ...input, ctx: { ...input.ctx, log } }, step),
    );
    log.debug({ step: step.description, outcome, ms: Date.now() - started }, `step ${outcome}: ${step.description}`);
  }
}

async function runStep(input: PhaseInput, step: Step): Promise<string> {
  switch (step.kind) {
    case 'sql':
      return runSqlStep(input.ctx, step);
    case 'backfill': {
      const result = await runBackfill({ ...input, inPlace: step.inPlace });
      return `${result.rowsDone} rows`;
    }
    case 'verify': {
      const { ctx, store, plan, facts, change, names } = input;
      const result =
        step.scope === 'backfill'
          ? await withAnalyzeBeside(input, () => verifyBackfill(ctx.client, store, plan.name, facts, change, names, plan.guards, ctx.log, ctx.connection))
          : await verifyRows(ctx.client, facts, change, names, plan.guards);
      if (result.differing > 0) throw new VerificationError(plan.name, result.differing, result.sampleKeys);
      return '0 rows differ';
    }
    case 'reset-backfill':
      await input.store.resetBackfill(input.plan.name);
      return 'reset';
    case 'drop-indexes':
      return `${await dropColumnIndexes(input.ctx, step, (definitions) => input.store.saveArchivedIndexes(input.plan.name, definitions))} dropped`;
    case 'record-archive':
      return recordArchive(input, step);
    case 'refill-old':
      return `${(await refillOld(input)).rowsDone} rows`;
    case 'restore-indexes':
      return `${await restoreIndexes(input, step)} built`;
    case 'refuse':
      throw new PlanError(
        `plan "${input.plan.name}": ${step.description}, so it cannot be rolled back. Restore from a backup if you need the old columns back.`,
      );
  }
}
