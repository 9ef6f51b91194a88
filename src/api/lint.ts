import { readFile } from 'node:fs/promises';
import { kindOf } from '../changes/kinds/registry.js';
import { resolveTable } from '../db/catalog.js';
import type { Client } from '../db/client.js';
import type { QualifiedName } from '../db/ident.js';
import { PlanError, type PlanProblem } from '../errors.js';
import { phaseIndex, PHASES } from '../phases/phases.js';
import { checkAgainstCatalog } from '../plan/catalog-check.js';
import { nameClashes, refuseNameClashes } from '../plan/name-clash.js';
import { affectedRoles } from '../plan/affected-roles.js';
import { sampleInverse } from '../plan/inverse-sample.js';
import { strictProblems, writableSchemaWarnings } from '../plan/writable-schemas.js';
import { lineOfField } from '../plan/load.js';
import { runPrivilegeProblems } from '../plan/phase-privileges.js';
import { statePrivileges, tableSchemaPrivilege } from '../plan/privileges.js';
import type { Plan } from '../plan/types.js';
import { orderProblems } from '../plan/queue.js';
import { inFlight } from '../state/store.js';
import { assertTrustedState } from '../state/trust.js';
import { withState, type RunOptions } from './session.js';

/** What `lint` says of one plan. */
export interface LintResult {
  readonly plan: string;
  /** `checked`: validated against the catalog; `in_flight`: started, checksum compared instead. */
  readonly outcome: 'checked' | 'in_flight' | 'complete';
  /** Things that will not stop the plan but that someone should act on (exit 0), e.g. roles that cannot read the phase flag. */
  readonly warnings: readonly string[];
}

/**
 * Check plans against the live catalog (the files were already checked
 * against the schema when loaded; `fileProblems` are the problems of the
 * files that were not, reported with the rest), including the privileges the
 * connected role needs for the phases still to run. Every problem of every
 * plan is reported together, each with its file and line; nothing is changed
 * in the database. `queue` (default: `plans`) is the whole folder, whose
 * release order must be possible (see `releaseOrder`).
 */
export async function lint(
  plans: readonly Plan[],
  options: RunOptions = {},
  fileProblems: readonly PlanProblem[] = [],
  queue: readonly Plan[] = plans,
): Promise<LintResult[]> {
  return withState(options, async (client, store) => {
    // What apply would refuse before creating or using the state (exit 2), said first.
    await assertTrustedState(client, store.schema, true);
    // An order that cannot be kept (an `after:` naming no plan, plans waiting for each other) is refused like any bad field.
    const problems: PlanProblem[] = [...fileProblems, ...orderProblems(queue).filter((p) => plans.some((x) => x.file === p.file))];
    const results: LintResult[] = [];
    // The state cannot be read without these: every plan is then checked as not started, which names them.
    const stateReachable = (await statePrivileges(client, store.schema)).length === 0;
    for (const plan of plans) {
      const state = stateReachable ? await store.get(plan.name) : null;
      const warnings = await roleWarnings(client, plan, store.schema, state?.facts.table);
      // What the kind itself wants said of every such plan (rename-table: what old code cannot do through its view).
      warnings.push(...(kindOf(plan.change).warnings?.(plan.change) ?? []));
      const writable = await writableSchemaWarnings(client, state?.facts.searchPath, store.schema);
      if (options.strict) problems.push(...strictProblems(plan, writable));
      else warnings.push(...writable);
      if (state?.status === 'complete') results.push({ plan: plan.name, outcome: 'complete', warnings: [] });
      else if (inFlight(state)) {
        if (state!.checksum !== plan.checksum) problems.push({ file: plan.file, path: '', message: `plan "${plan.name}" changed after it started` });
        const remaining = PHASES.filter((p) => phaseIndex(p) > phaseIndex(state!.phase));
        problems.push(...(await runPrivilegeProblems(client, plan, state!.facts.table, store.schema, remaining)));
        problems.push(...(await nameClashes(client, plan, state!.facts, remaining, true)));
        results.push({ plan: plan.name, outcome: 'in_flight', warnings });
      } else {
        try {
          const facts = await checkAgainstCatalog(client, plan, store.schema);
          await refuseNameClashes(client, plan, facts, PHASES, false);
          const sample = await sampleInverse(client, plan, facts);
          if (sample?.differing) {
            warnings.push(
              `${plan.change.kind}.reverse does not give back the old value from what using made of it in ${sample.differing} of ${sample.sampled} sampled rows, e.g. ` +
                sample.examples.map((e) => `key ${e.key}: ${e.old} came back as ${e.back}`).join('; '),
            );
          }
          results.push({ plan: plan.name, outcome: 'checked', warnings });
        } catch (error) {
          if (error instanceof PlanError) problems.push(...error.problems);
          else throw error;
        }
      }
    }
    if (problems.length) throw new PlanError(await withLines(problems));
    return results;
  });
}

/** Give each problem that names a field the line of that field in its file. */
async function withLines(problems: readonly PlanProblem[]): Promise<PlanProblem[]> {
  const texts = new Map<string, string | null>();
  const textOf = async (file: string): Promise<string | null> => {
    if (!texts.has(file)) texts.set(file, await readFile(file, 'utf8').catch(() => null));
    return texts.get(file)!;
  };
  return Promise.all(
    problems.map(async (p) => {
      if (p.line !== undefined || !p.file || !p.path) return p;
      const text = await textOf(p.file);
      return text === null ? p : { ...p, line: lineOfField(text, p.path) };
    }),
  );
}

/** Roles with privileges on the plan's table that the plan leaves unable to read its phase flag (see `affectedRoles`). */
async function roleWarnings(client: Client, plan: Plan, stateSchema: string, recorded: QualifiedName | undefined): Promise<string[]> {
  if ((await tableSchemaPrivilege(client, recorded?.schema ?? plan.table.schema)).length) return [];
  const table = recorded ?? (await resolveTable(client, plan.table));
  return table ? affectedRoles(client, table, stateSchema, plan.name) : [];
}
