import { PlanError, type PlanProblem } from '../errors.js';
import { checkAgainstCatalog } from '../plan/catalog-check.js';
import type { Plan } from '../plan/types.js';
import { inFlight } from '../state/store.js';
import { withState, type RunOptions } from './session.js';

/** What `lint` says of one plan. */
export interface LintResult {
  readonly plan: string;
  /** `checked`: validated against the catalog; `in_flight`: started, checksum compared instead. */
  readonly outcome: 'checked' | 'in_flight' | 'complete';
}

/**
 * Check plans against the live catalog (the files were already checked
 * against the schema when loaded). All problems of all plans are reported
 * together; nothing is changed in the database.
 */
export async function lint(plans: readonly Plan[], options: RunOptions = {}): Promise<LintResult[]> {
  return withState(options, async (client, store) => {
    const problems: PlanProblem[] = [];
    const results: LintResult[] = [];
    for (const plan of plans) {
      const state = await store.get(plan.name);
      if (state?.status === 'complete') results.push({ plan: plan.name, outcome: 'complete' });
      else if (inFlight(state)) {
        if (state!.checksum !== plan.checksum) problems.push({ file: plan.file, path: '', message: `plan "${plan.name}" changed after it started` });
        results.push({ plan: plan.name, outcome: 'in_flight' });
      } else {
        try {
          await checkAgainstCatalog(client, plan, store.schema);
          results.push({ plan: plan.name, outcome: 'checked' });
        } catch (error) {
          if (error instanceof PlanError) problems.push(...error.problems);
          else throw error;
        }
      }
    }
    if (problems.length) throw new PlanError(problems);
    return results;
  });
}
