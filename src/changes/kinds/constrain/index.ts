import { PlanError } from '../../../errors.js';
import { needTargets, proposed, TEXTUAL, type ChangeKindModule, type KindProblem } from '../kind.js';
import { learnConstrain } from './learn.js';
import { constrainProgram } from './program.js';
import { constrainSchema, type ConstrainFacts } from './spec.js';

/**
 * `constrain: { column, not_null?, check?, foreign_key?, fix? }`: an
 * existing column gets NOT NULL, a CHECK or a FOREIGN KEY while old code
 * still writes. A trigger gives old code's violating writes the plan's
 * `fix`, the backfill fixes existing rows, the constraint is added NOT VALID
 * and validated without blocking writes (see `constrainProgram` and
 * docs/kinds/constrain.md). It adds no column, so it has a program of its own.
 */
export const constrain = {
  name: 'constrain',
  summary: 'add NOT NULL, a CHECK or a FOREIGN KEY to a column old code still writes',
  usage: 'what to add: plan new constrain table.column not_null | "check:<expression>" | "references:schema.table(column)"',
  schema: constrainSchema,
  carries: false,
  inverse: false,
  outline: (change) => ({
    reads: [change.column],
    adds: [],
    expressions: [
      ...(change.fix === undefined ? [] : [{ field: 'constrain.fix', sql: change.fix, over: 'old' as const, gives: change.column }]),
      ...(change.check === undefined ? [] : [{ field: 'constrain.check', sql: change.check, over: 'old' as const, gives: change.column }]),
    ],
  }),
  check: (change) => {
    const problems: KindProblem[] = [];
    if (!change.not_null && change.check === undefined && !change.foreign_key)
      problems.push({ path: 'constrain', message: 'says nothing to add: give not_null: true, check or foreign_key' });
    return problems;
  },
  learn: learnConstrain,
  // No column is replaced: old and new code write the same one. So nothing counts as an old side, and the old-code
  // gate (which looks for statements naming old columns) does not mistake new code's writes of the column for old code's.
  resolve: () => ({ old: [], new: [] }),
  program: (change, facts) =>
    constrainProgram(change, { ...facts, constrain: facts.constrain ?? { fix: null, check: null, checkDefinition: null, references: null } }),
  uniques: () => [],
  /** `not_null`, `check:<expression>` or `references:schema.table(column)`; a fix proposed where one is obvious, else a placeholder. */
  propose(request) {
    needTargets(request, 1, this.usage);
    const old = request.old[0]!;
    const what = request.targets[0]!;
    const added =
      what === 'not_null'
        ? { not_null: true }
        : what.startsWith('check:')
          ? { check: what.slice('check:'.length) }
          : what.startsWith('references:')
            ? { foreign_key: { references: what.slice('references:'.length) } }
            : null;
    if (!added) throw new PlanError([{ file: '', path: 'targets', message: `needs ${this.usage}` }]);
    const fix =
      what === 'not_null'
        ? proposed(TEXTUAL.test(old.type) ? `coalesce(${old.name}, '')` : null, old.type)
        : proposed(what.startsWith('references:') ? 'NULL' : null, old.type);
    return { column: old.name, ...added, fix };
  },
} satisfies ChangeKindModule<'constrain', typeof constrainSchema, ConstrainFacts>;
