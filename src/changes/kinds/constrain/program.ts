import { ident, literal, objectName, qualified } from '../../../db/ident.js';
import { addConstraintSafely, setNotNullSafely, type SafeConstraint } from '../../constraints.js';
import type { PlanFacts } from '../../model.js';
import { BODY_TAG, SAFE_SEARCH_PATH } from '../../sql-objects.js';
import { ddl, emptyProgram, lockingAll, type InPlaceFix, type PhaseProgram, type SqlStep, type Step } from '../../steps.js';
import { constraintNames, type ConstrainFacts, type ConstrainSpec } from './spec.js';

/** The alias the row goes by in the trigger (its NEW record) and in the backfill's UPDATE, so one printed text serves both. */
const ROW = 'new';

/**
 * True for a row (named {@link ROW}) that would violate one of the plan's
 * constraints. A CHECK is violated only when false (NULL passes, as in
 * PostgreSQL); a foreign key only by a non-NULL value with no referenced row.
 */
export function violates(change: ConstrainSpec, facts: ConstrainFacts['constrain']): string {
  const col = `${ROW}.${ident(change.column)}`;
  const parts = [
    ...(change.not_null ? [`${col} IS NULL`] : []),
    ...(facts.check !== null ? [`(${facts.check}) IS FALSE`] : []),
    ...(facts.references
      ? [
          `(${col} IS NOT NULL AND NOT EXISTS (SELECT FROM ${qualified(facts.references.table)} AS pgshift_ref ` +
            `WHERE pgshift_ref.${ident(facts.references.column)} OPERATOR(pg_catalog.=) ${col}))`,
        ]
      : []),
  ];
  return parts.join(' OR ');
}

/** The constraints the plan adds, each the safe way (`addConstraintSafely`); NOT NULL as a CHECK until contract. */
function constraints(change: ConstrainSpec, facts: PlanFacts & ConstrainFacts): SafeConstraint[] {
  const names = constraintNames(facts.table, change.column);
  const col = ident(change.column);
  const { references } = facts.constrain;
  return [
    ...(change.not_null ? [{ table: facts.table, name: names.notNull, definition: `CHECK (${col} IS NOT NULL)`, kind: 'check' as const, validate: true }] : []),
    ...(change.check !== undefined
      ? [{ table: facts.table, name: names.check, definition: facts.constrain.checkDefinition!, kind: 'check' as const, validate: true }]
      : []),
    ...(references
      ? [
          {
            table: facts.table,
            name: names.foreignKey,
            definition: `FOREIGN KEY (${col}) REFERENCES ${qualified(references.table)} (${ident(references.column)})`,
            kind: 'foreign-key' as const,
            validate: true,
            references: references.table,
          },
        ]
      : []),
  ];
}

/**
 * `constrain`'s own program (it adds no column, so not the shared old ↔ new
 * one). dual-write installs a BEFORE INSERT OR UPDATE trigger that gives a
 * row that would violate the constraint the plan's `fix` (old code's writes
 * are fixed, not failed), then adds each constraint NOT VALID (new writes are
 * checked from then on, after the trigger fixed them); backfill fixes the
 * existing rows in keyset batches; switch-read validates (the scan under
 * SHARE UPDATE EXCLUSIVE); stop-write drops the trigger (only new code runs,
 * writing valid values); contract turns the NOT NULL check into the column's
 * NOT NULL without a scan. Without a `fix` there is no trigger and no
 * backfill: lint refused the plan if any row violated.
 */
export function constrainProgram(change: ConstrainSpec, facts: PlanFacts & ConstrainFacts): PhaseProgram {
  const t = qualified(facts.table);
  const { fn, trigger } = triggerNames(facts, change.column);
  const fix = facts.constrain.fix;
  const wanted = constraints(change, facts);
  const program = emptyProgram();

  const installTrigger: Step[] =
    fix === null
      ? []
      : [
          ddl('create the fixing trigger function', 'none', [
            `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql\n` +
              // A foreign key's lookup of the referenced row runs as the function's owner (the table's), as PostgreSQL's own
              // foreign key check does: the application's role may write this table without reading the other one.
              (facts.constrain.references ? 'SECURITY DEFINER\n' : '') +
              `SET search_path = ${SAFE_SEARCH_PATH}\n` +
              `AS ${BODY_TAG}\n-- pgshift constrain: fix what would violate\nBEGIN\n` +
              `  IF ${violates(change, facts.constrain)} THEN\n    ${ROW}.${ident(change.column)} := ${fix};\n  END IF;\n  RETURN ${ROW};\nEND\n${BODY_TAG}`,
          ]),
          // CREATE TRIGGER takes SHARE ROW EXCLUSIVE (writes wait, reads go on) for a catalog insert only.
          ddl('install the fixing trigger (BEFORE INSERT OR UPDATE)', 'SHARE ROW EXCLUSIVE', [
            `CREATE OR REPLACE TRIGGER ${trigger} BEFORE INSERT OR UPDATE ON ${t}\nFOR EACH ROW\nEXECUTE FUNCTION ${fn}()`,
          ]),
        ];
  const triggerGone = `SELECT NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(${literal(t)}) AND tgname = ${literal(trigger.slice(1, -1).replaceAll('""', '"'))}) AS done`;
  const dropTrigger: Step[] =
    fix === null
      ? []
      : [
          // DROP TRIGGER takes ACCESS EXCLUSIVE for a catalog delete only; skipped when there is none (its IF EXISTS would take only ACCESS SHARE).
          ddl('drop the fixing trigger (catalog-only)', 'ACCESS EXCLUSIVE', [`DROP TRIGGER IF EXISTS ${trigger} ON ${t}`], triggerGone),
          ddl('drop the fixing trigger function', 'none', [`DROP FUNCTION IF EXISTS ${fn}()`]),
        ];

  program['dual-write'] = {
    apply: [...installTrigger, ...wanted.map((c) => addConstraintSafely({ ...c, validate: false })[0]!)],
    rollback: [...wanted.map((c) => dropConstraint(facts, c)), ...dropTrigger],
  };
  if (fix !== null) {
    const inPlace: InPlaceFix = {
      alias: ROW,
      set: `${ident(change.column)} = ${fix}`,
      stale: `(${violates(change, facts.constrain)})`,
      columns: [change.column],
    };
    program.backfill = {
      apply: [{ kind: 'backfill', description: `fix ${change.column} of existing rows that would violate, in keyset batches`, inPlace }],
      rollback: [{ kind: 'reset-backfill', description: 'forget the backfill checkpoint (the fixed rows keep their fixed values)' }],
    };
  }
  program['switch-read'] = {
    apply: wanted.map((c) => addConstraintSafely(c)[1]!),
    // A valid constraint checks new writes exactly as the NOT VALID one did: nothing to undo.
    rollback: [],
  };
  program['stop-write'] = { apply: dropTrigger, rollback: installTrigger };
  if (change.not_null) {
    const check = constraintNames(facts.table, change.column).notNull;
    const [add, validate, setNotNull] = setNotNullSafely(facts.table, change.column, ident(check));
    void add;
    void validate;
    program.contract = {
      apply: [setNotNull!],
      rollback: [
        ...addConstraintSafely(wanted[0]!),
        ddl(`drop NOT NULL on ${change.column}; the validated check holds it again (catalog-only)`, 'ACCESS EXCLUSIVE', [
          `ALTER TABLE ${t} ALTER COLUMN ${ident(change.column)} DROP NOT NULL`,
        ]),
      ],
    };
  }
  return program;
}

/** The fixing trigger and its function (quoted): named after the table and column, as a program is not told the plan's name. */
export function triggerNames(facts: PlanFacts, column: string): { fn: string; trigger: string } {
  return {
    fn: qualified({ schema: facts.stateSchema, name: objectName('constrain', facts.table.name, column) }),
    trigger: ident(objectName('pgshift', 'constrain', column)),
  };
}

/** Drop one constraint: ACCESS EXCLUSIVE for a catalog delete; a foreign key's on both tables (it drops triggers on each). */
function dropConstraint(facts: PlanFacts, c: SafeConstraint): SqlStep {
  const tables = c.references ? [facts.table, c.references] : [facts.table];
  return lockingAll(
    ddl(`drop ${c.kind === 'check' ? 'CHECK' : 'FOREIGN KEY'} ${c.name} (catalog-only)`, 'ACCESS EXCLUSIVE', [
      `ALTER TABLE ${qualified(facts.table)} DROP CONSTRAINT IF EXISTS ${ident(c.name)}`,
    ]),
    tables.map((table) => ({ table, mode: 'ACCESS EXCLUSIVE' as const })),
  );
}
