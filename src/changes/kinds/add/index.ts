import { z } from 'zod';
import { ident, literal, qualified } from '../../../db/ident.js';
import { addUniqueSafely, setNotNullSafely, unquote } from '../../constraints.js';
import type { ColumnChange, PlanFacts } from '../../model.js';
import {
  BODY_TAG,
  createTriggers,
  dropTriggers,
  expressionFunctions,
  SAFE_PATH_IN_TRANSACTION,
  SAFE_SEARCH_PATH,
  syncTriggers,
  type ObjectNames,
} from '../../sql-objects.js';
import { ddl, emptyProgram, type Step } from '../../steps.js';
import { canonicalType } from '../new-column.js';
import { identifier, sqlExpression, typeName } from '../fields.js';
import { declaredUnique, needTargets, proposed, type ChangeKindModule } from '../kind.js';
import { learnAdd, type AddFacts } from './learn.js';

const schema = z.strictObject({
  column: identifier,
  type: typeName,
  /** Enforced at switch-read, the safe way (a validated CHECK first). */
  not_null: z.boolean().optional(),
  /** Any expression over the row's columns: a volatile call, a value computed from other columns, a scalar subquery. */
  value: sqlExpression,
  /** The column's default for new code's inserts, set at stop-write (catalog-only), when old code is gone. */
  default: sqlExpression.optional(),
  unique: z.boolean().optional(),
});

type AddSpec = z.output<typeof schema>;

/** The add as the shared model sees it: no old column, one new column filled once from the row (the backfill and verify read this). */
function resolveAdd(change: AddSpec, facts: PlanFacts & Partial<AddFacts>): ColumnChange {
  return {
    old: [],
    new: [
      {
        name: change.column,
        type: canonicalType(facts, change.column),
        collation: null,
        forward: change.value,
        notNull: change.not_null ?? false,
        default: change.default ?? null,
        defaultFrom: 'switch-read',
        unique: !!change.unique,
        reads: facts.add?.reads ?? [],
        filledOnce: true,
      },
    ],
  };
}

/**
 * The trigger function: a write that leaves the column NULL (old code's
 * inserts, which do not name it; an update of a row the backfill has not
 * reached yet) gets the value, computed from the row being written. It
 * derives nothing else, so the backfill's own writes (which set the column)
 * pass through it unchanged. SECURITY INVOKER, under the fixed search_path;
 * the value was printed bound at plan start, so it calls nothing of pgshift's.
 */
function fillFunction(change: AddSpec, names: ObjectNames, facts: PlanFacts & Partial<AddFacts>): string {
  const col = ident(change.column);
  const value = facts.inline?.forwardOnNew?.[0] ?? change.value;
  return (
    `CREATE OR REPLACE FUNCTION ${names.syncFunction}() RETURNS trigger LANGUAGE plpgsql\n` +
    `SET search_path = ${SAFE_SEARCH_PATH}\n` +
    `AS ${BODY_TAG}\n-- pgshift add: fill ${col} where a write leaves it NULL\nBEGIN\n` +
    `  IF NEW.${col} IS NULL THEN\n    NEW.${col} := ${value};\n  END IF;\n  RETURN NEW;\nEND\n${BODY_TAG}`
  );
}

/**
 * `add: { column, type, value, not_null?, default?, unique? }`: a column old
 * code does not know, given a value for every row. Its program is its own,
 * as the change has no old column to keep in sync and nothing to drop at
 * contract: expand adds the column (nullable, no default: catalog-only);
 * dual-write installs a trigger filling it where a write leaves it NULL;
 * backfill fills existing rows in keyset batches (a row is done once its
 * column is not NULL: the value may be volatile, so it is never recomputed);
 * switch-read enforces NOT NULL and UNIQUE the safe way; stop-write sets the
 * default for new code's inserts; contract drops the trigger. Every phase
 * has a rollback, contract's included. See docs/kinds/add.md.
 */
export const add = {
  name: 'add',
  summary: 'add a column with a value for every row',
  usage: 'plan new add table.new_column type',
  schema,
  carries: false,
  inverse: false,
  namesNewColumn: true,
  outline: (change) => ({
    reads: [],
    adds: [{ name: change.column, type: change.type, field: 'add.type', nameField: 'add.column' }],
    expressions: [
      { field: 'add.value', sql: change.value, over: 'row', gives: change.column },
      ...(change.default === undefined ? [] : [{ field: 'add.default', sql: change.default, over: 'row' as const, gives: change.column }]),
    ],
  }),
  learn: async (change, catalog) => learnAdd(change.column, change.value, change.default, catalog),
  resolve: resolveAdd,
  program: (change, facts, names) => {
    const t = qualified(facts.table);
    const col = ident(change.column);
    const resolved = resolveAdd(change, facts);
    const reads = resolved.new[0]!.reads ?? [];
    const types = facts.inline?.oldTypes ?? reads.map((r) => r.type);
    const functions = [...syncTriggers(names, facts).map((s) => `${s.fn}()`), `${names.forward(0)}(${types.join(', ')})`];
    const triggers = syncTriggers(names, facts).map((s) => literal(unquote(s.trigger)));
    const triggerGone = `SELECT NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(${literal(t)}) AND tgname IN (${triggers.join(', ')})) AS done`;
    const install: Step[] = [
      ddl(`create the value function and the fill function of ${change.column}`, 'none', [
        // SQL-standard bodies bind their names at CREATE: under the fixed path, only what PostgreSQL printed at plan start.
        SAFE_PATH_IN_TRANSACTION,
        ...expressionFunctions(resolved, names, facts),
        fillFunction(change, names, facts),
      ]),
      // CREATE TRIGGER takes SHARE ROW EXCLUSIVE: it blocks writes (not reads) for the catalog update only, waited for outside the queue.
      ddl(`install the trigger filling ${change.column}`, 'SHARE ROW EXCLUSIVE', createTriggers(names, facts)),
    ];
    const remove: Step[] = [
      // DROP TRIGGER takes ACCESS EXCLUSIVE, for a catalog update only; skipped when there is no trigger (its
      // DROP IF EXISTS would take only ACCESS SHARE, which must not be waited for as ACCESS EXCLUSIVE).
      ddl(`drop the trigger filling ${change.column} (catalog-only)`, 'ACCESS EXCLUSIVE', dropTriggers(names, facts, t), triggerGone),
      ddl(
        'drop the functions',
        'none',
        functions.map((f) => `DROP FUNCTION IF EXISTS ${f}`),
      ),
    ];
    const release = [
      ...(change.unique ? [`DROP CONSTRAINT IF EXISTS ${names.uniqueIndex(change.column)}`] : []),
      ...(change.not_null ? [`ALTER COLUMN ${col} DROP NOT NULL`, `DROP CONSTRAINT IF EXISTS ${names.notNullCheck(change.column)}`] : []),
    ];
    const program = emptyProgram();
    program.expand = {
      // ADD COLUMN without a default takes ACCESS EXCLUSIVE for a catalog update only: no row is rewritten.
      apply: [
        ddl(`add ${change.column}, nullable, no default (catalog-only)`, 'ACCESS EXCLUSIVE', [
          `ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS ${col} ${canonicalType(facts, change.column)}`,
        ]),
      ],
      // DROP COLUMN only marks the column dropped in the catalog: no rewrite.
      rollback: [ddl(`drop ${change.column} (catalog-only)`, 'ACCESS EXCLUSIVE', [`ALTER TABLE ${t} DROP COLUMN IF EXISTS ${col}`])],
    };
    program['dual-write'] = { apply: install, rollback: remove };
    program.backfill = {
      apply: [
        { kind: 'backfill', description: `fill ${change.column} of existing rows where it is NULL, in keyset batches` },
        { kind: 'verify', description: `verify no row has ${change.column} NULL`, scope: 'backfill' },
      ],
      rollback: [{ kind: 'reset-backfill', description: `forget the backfill checkpoint (the trigger keeps filling ${change.column})` }],
    };
    program['switch-read'] = {
      apply: [
        { kind: 'verify', description: `verify no row has ${change.column} NULL` },
        ...(change.not_null ? setNotNullSafely(facts.table, change.column, names.notNullCheck(change.column)) : []),
        ...(change.unique ? addUniqueSafely(facts.table, change.column, names.uniqueIndex(change.column)) : []),
      ],
      // Dropping NOT NULL, a constraint or an index changes the catalog only: ACCESS EXCLUSIVE for an instant.
      rollback: release.length
        ? [
            ddl(`drop what switch-read enforced on ${change.column} (catalog-only)`, 'ACCESS EXCLUSIVE', [
              `ALTER TABLE ${t} ${release.join(', ')}`,
              ...(change.unique ? [`DROP INDEX IF EXISTS ${ident(facts.table.schema)}.${names.uniqueIndex(change.column)}`] : []),
            ]),
          ]
        : [],
    };
    if (change.default !== undefined) {
      // SET/DROP DEFAULT take ACCESS EXCLUSIVE for a catalog update only: a default applies to later inserts, nothing is rewritten.
      program['stop-write'] = {
        apply: [
          ddl(`default ${change.column} to ${change.default} for new code's inserts (catalog-only)`, 'ACCESS EXCLUSIVE', [
            `ALTER TABLE ${t} ALTER COLUMN ${col} SET DEFAULT ${change.default}`,
          ]),
        ],
        rollback: [ddl(`remove the default of ${change.column} (catalog-only)`, 'ACCESS EXCLUSIVE', [`ALTER TABLE ${t} ALTER COLUMN ${col} DROP DEFAULT`])],
      };
    }
    // Contract drops only what pgshift made; the column and its values stay, so its rollback installs them again
    // (the API refuses rolling back a plan that reached contract, for now whatever its kind).
    program.contract = { apply: remove, rollback: install };
    return program;
  },
  uniques: (change) => declaredUnique('add.unique', change.column, change.unique),
  propose(request) {
    needTargets(request, 1, this.usage);
    const type = request.targets[0]!;
    // The value is the plan's substance: only a person knows what existing rows and old code's inserts should get.
    return { column: request.named[0], type, not_null: true, value: proposed(null, type) };
  },
} satisfies ChangeKindModule<'add', typeof schema, AddFacts>;
