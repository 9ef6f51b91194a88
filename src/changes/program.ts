import { ident, literal, qualified } from '../db/ident.js';
import { ddl, lockingAll, type PhaseProgram, type SqlStep, type Step } from './steps.js';
import { carryComment, carryOverSteps, contractCarryAfter, contractCarryBefore, contractCarryUndo, contractLocks, dropCarriedSteps } from './carry-over.js';
import { archivedColumns, noneOfColumns, recordArchive, renameColumns } from './archive.js';
import { redefineViewsSteps, restoreViewsSteps } from './dependent-views.js';
import { partitionIndexName } from '../db/partitions.js';
import { addUniqueSafely, setNotNullSafely, unquote } from './constraints.js';
import { buildPartitionedIndex, dropPartitionedIndex, type PartitionedIndex } from './partitioned-index.js';
import type { ColumnChange, NewColumn, PlanFacts } from './model.js';
import { kindOf, type Change } from './kinds/registry.js';
import {
  createTriggers,
  dropTriggers,
  expressionFunctions,
  objectNames,
  SAFE_PATH_IN_TRANSACTION,
  syncFunctions,
  syncTriggers,
  type ObjectNames,
  type SyncMode,
} from './sql-objects.js';

/** What the compiler reads of a plan (the whole plan is in plan/types.ts, a layer above). */
export interface CompiledPlan {
  readonly name: string;
  readonly change: Change;
}

/**
 * Compile a plan into its six phases' steps. Pure: the same plan and facts
 * always give the same SQL, which is what `plan show` prints and what the
 * unit tests pin down. `generation` is the old-code gate's current one (see
 * old-code-mark.ts), so a phase that redefines the sync functions keeps it.
 */
export function compileProgram(plan: CompiledPlan, facts: PlanFacts, generation = 0): PhaseProgram {
  const kind = kindOf(plan.change);
  const names = objectNames(plan.name, facts, generation);
  const own = kind.program?.(plan.change, facts, names);
  if (own) return own;
  const change = kind.resolve(plan.change, facts);
  // Only a rename records what it carries.
  const carry = kind.carries ? facts.carry : undefined;
  const t = qualified(facts.table);
  const sync = (mode: SyncMode): SqlStep => ddl(`sync trigger function: ${mode}`, 'none', syncFunctions(change, names, facts, mode));
  const oldWithDefault = change.old.filter((c) => c.default !== null);
  const oldNotNull = change.old.filter((c) => c.notNull);
  const archived = archivedColumns(
    plan.name,
    change.old.map((c) => c.name),
  );
  const functions = [
    ...syncTriggers(names, facts).map((s) => `${s.fn}()`),
    ...change.new.map((_, i) => signature(names.forward(i), change.old)),
    ...change.old.map((_, i) => signature(names.reverse(i), change.new)),
  ];

  return {
    expand: {
      apply: [
        ddl(
          `add ${change.new.map((c) => c.name).join(', ')}, nullable, no default (catalog-only)` +
            // A retype says why it copies rather than changing the type in place.
            (facts.retype && !facts.retype.metadataOnly ? `; a copy, not an in-place ALTER TYPE: ${facts.retype.reason}` : ''),
          'ACCESS EXCLUSIVE',
          [
            `ALTER TABLE ${t} ${change.new
              .map((c) => `ADD COLUMN IF NOT EXISTS ${ident(c.name)} ${c.type}${c.collation ? ` COLLATE ${c.collation}` : ''}`)
              .join(', ')}`,
            // A default set after ADD COLUMN applies to new rows only: no table rewrite, even for volatile defaults.
            ...change.new
              .filter((c) => c.default !== null && c.defaultFrom === 'expand')
              .map((c) => `ALTER TABLE ${t} ALTER COLUMN ${ident(c.name)} SET DEFAULT ${c.default}`),
            ...carryComment(carry, facts.table, change.new[0]!.name),
          ],
        ),
      ],
      rollback: [
        ddl(`drop ${change.new.map((c) => c.name).join(', ')} (catalog-only)`, 'ACCESS EXCLUSIVE', [
          `ALTER TABLE ${t} ${change.new.map((c) => `DROP COLUMN IF EXISTS ${ident(c.name)}`).join(', ')}`,
        ]),
      ],
    },
    'dual-write': {
      apply: [
        ddl('create the expression functions and the sync function', 'none', [
          // SQL-standard bodies bind their names at CREATE: under the fixed path, only what PostgreSQL printed at plan start.
          ...(facts.inline?.bound ? [SAFE_PATH_IN_TRANSACTION] : []),
          ...expressionFunctions(change, names, facts),
          ...syncFunctions(change, names, facts, 'two-way'),
        ]),
        ddl('install the sync trigger', 'SHARE ROW EXCLUSIVE', createTriggers(names, facts)),
      ],
      rollback: [
        // DROP TRIGGER takes ACCESS EXCLUSIVE (seen in pg_locks), unlike CREATE TRIGGER; catalog-only, so held for an instant.
        // Skipped when there is no trigger (dual-write failed before it): a
        // missing trigger's DROP IF EXISTS takes only ACCESS SHARE, so it must
        // not wait outside the queue for ACCESS EXCLUSIVE.
        ddl('drop the sync trigger (catalog-only)', 'ACCESS EXCLUSIVE', dropTriggers(names, facts, t), triggerGone(names, facts, t)),
        ddl(
          'drop the functions',
          'none',
          functions.map((f) => `DROP FUNCTION IF EXISTS ${f}`),
        ),
      ],
    },
    backfill: {
      apply: [
        // Each batch holds ROW EXCLUSIVE on the table (its UPDATE's, and where it skips the trigger, taken one statement
        // earlier: backfill/trigger-bypass.ts) and its rows' locks until it commits; `plan show` says so.
        {
          kind: 'backfill',
          description: `fill ${change.new.map((c) => c.name).join(', ')} of existing rows in keyset batches (each one short transaction holding ROW EXCLUSIVE on the table and its rows' locks)`,
        },
        { kind: 'verify', description: 'verify no row differs', scope: 'backfill' },
      ],
      rollback: [{ kind: 'reset-backfill', description: 'forget the backfill checkpoint (the new columns stay in sync)' }],
    },
    'switch-read': {
      apply: [
        { kind: 'verify', description: 'verify no row differs' },
        ...enforceDeclared(change, names, facts),
        ...(carry ? carryOverSteps(carry, facts.table, facts.partitioning) : []),
        // From here new code may insert rows without the old columns, so a
        // column default there would make them look written: the trigger
        // applies the old defaults instead.
        sync('two-way-defaults'),
        ...(oldWithDefault.length
          ? [
              ddl("move the old columns' defaults into the trigger", 'ACCESS EXCLUSIVE', [
                `ALTER TABLE ${t} ${oldWithDefault.map((c) => `ALTER COLUMN ${ident(c.name)} DROP DEFAULT`).join(', ')}`,
              ]),
            ]
          : []),
      ],
      rollback: [
        ...(oldWithDefault.length
          ? [
              ddl("restore the old columns' defaults", 'ACCESS EXCLUSIVE', [
                `ALTER TABLE ${t} ${oldWithDefault.map((c) => `ALTER COLUMN ${ident(c.name)} SET DEFAULT ${c.default}`).join(', ')}`,
              ]),
            ]
          : []),
        sync('two-way'),
        ...(carry ? dropCarriedSteps(carry, facts.table, facts.partitioning) : []),
        ...releaseDeclared(change, names, facts),
      ],
    },
    'stop-write': {
      apply: [
        ...(oldNotNull.length
          ? [
              ddl('drop NOT NULL on the old columns (catalog-only)', 'ACCESS EXCLUSIVE', [
                `ALTER TABLE ${t} ${oldNotNull.map((c) => `ALTER COLUMN ${ident(c.name)} DROP NOT NULL`).join(', ')}`,
              ]),
            ]
          : []),
        sync('one-way'),
        // From here the new columns are the truth and the old ones derived: views move over to read them.
        ...redefineViewsSteps(facts.views),
      ],
      rollback: [
        ...restoreViewsSteps(facts.views),
        sync('two-way-defaults'),
        ...oldNotNull.flatMap((c) => setNotNullSafely(facts.table, c.name, names.notNullCheck(c.name))),
      ],
    },
    contract: {
      apply: [
        {
          kind: 'drop-indexes',
          description: `drop CONCURRENTLY the indexes on ${change.old.map((c) => c.name).join(', ')} that no constraint needs (SHARE UPDATE EXCLUSIVE: reads and writes go on), recording their definitions for contract's rollback, so no index of a column nothing writes costs the application's writes`,
          table: facts.table,
          columns: change.old.map((c) => c.name),
        },
        lockingAll(
          ddl(
            `drop the sync trigger; archive ${archived.map((c) => `${c.column} as ${c.archive}`).join(', ')} (catalog-only)` +
              (carry ? `; drop what used ${change.old[0]!.name} and give the copies their final names` : '') +
              (facts.retype?.notCarried?.length
                ? `; ${facts.retype.notCarried.join(', ')}, not carried to the new type: an index goes with the step before, a constraint stays on the archive until purge drops it`
                : ''),
            'ACCESS EXCLUSIVE',
            [
              ...dropTriggers(names, facts, t),
              ...(carry ? contractCarryBefore(carry, facts.table, change.new[0]!.name) : []),
              // The originals not dropped CONCURRENTLY (a partitioned table's): their copies take their names below.
              ...(carry
                ? carry.indexes.filter((i) => !i.constraint).map((i) => `DROP INDEX IF EXISTS ${qualified({ schema: facts.table.schema, name: i.name })}`)
                : []),
              ...renameColumns(facts.table, archived),
              ...(carry ? contractCarryAfter(carry, facts.table) : []),
            ],
            // One transaction: once the old columns have left their names, the rest was done with them.
            noneOfColumns(
              facts.table,
              change.old.map((c) => c.name),
            ),
          ),
          carry ? contractLocks(carry, facts.table) : [],
        ),
        ddl(
          'drop the functions',
          'none',
          functions.map((f) => `DROP FUNCTION IF EXISTS ${f}`),
        ),
        recordArchive(archived),
      ],
      rollback: contractRollback(),
    },
  };

  /**
   * Back to stop-write: the functions and the one-way trigger again, in the
   * transaction that gives the old columns their names back (so no write
   * after it leaves them stale), then every row's old columns from `reverse`
   * (rows new code wrote since contract), then the indexes contract dropped.
   */
  function contractRollback(): Step[] {
    const unrestorable = carry ? [...carry.constraints.map((c) => c.name), ...carry.indexes.filter((i) => i.constraint).map((i) => i.name)] : [];
    if (unrestorable.length || (carry && facts.partitioning && carry.indexes.length))
      return [
        {
          kind: 'refuse',
          description: unrestorable.length
            ? `contract dropped ${unrestorable.join(', ')} with ${change.old[0]!.name}'s name, which its rollback does not build again`
            : `contract dropped the partitioned indexes on ${change.old[0]!.name}, which its rollback does not build again`,
        },
      ];
    return [
      ddl('create the expression functions and the one-way sync function', 'none', [
        ...(facts.inline?.bound ? [SAFE_PATH_IN_TRANSACTION] : []),
        ...expressionFunctions(change, names, facts),
        ...syncFunctions(change, names, facts, 'one-way'),
      ]),
      lockingAll(
        ddl(
          `give ${archived.map((c) => c.archive).join(', ')} their names back and install the one-way sync trigger (catalog-only)`,
          'ACCESS EXCLUSIVE',
          [
            ...renameColumns(facts.table, archived, true),
            ...(carry ? contractCarryUndo(carry, facts.table, change.old[0]!.name) : []),
            ...createTriggers(names, facts),
          ],
          noneOfColumns(
            facts.table,
            archived.map((c) => c.archive),
          ),
        ),
        carry ? contractLocks(carry, facts.table) : [],
      ),
      {
        kind: 'refill-old',
        description: `set ${change.old.map((c) => c.name).join(', ')} of every row from reverse, in keyset batches (rows written since contract)`,
      },
      {
        kind: 'restore-indexes',
        description: `build again CONCURRENTLY the indexes contract dropped on ${change.old.map((c) => c.name).join(', ')}`,
        table: facts.table,
      },
    ];
  }
}

function triggerGone(names: ObjectNames, facts: PlanFacts, t: string): string {
  const triggers = syncTriggers(names, facts).map((s) => literal(unquote(s.trigger)));
  return `SELECT NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(${literal(t)}) AND tgname IN (${triggers.join(', ')})) AS done`;
}

function signature(fn: string, params: readonly { type: string }[]): string {
  return `${fn}(${params.map((p) => p.type).join(', ')})`;
}

/** NOT NULL, DEFAULT and UNIQUE on the new columns, each the safe way. */
function enforceDeclared(change: ColumnChange, names: ObjectNames, facts: PlanFacts): Step[] {
  const t = qualified(facts.table);
  return change.new.flatMap((c) => [
    ...(c.default !== null && c.defaultFrom === 'switch-read'
      ? [ddl(`default on ${c.name} (catalog-only)`, 'ACCESS EXCLUSIVE', [`ALTER TABLE ${t} ALTER COLUMN ${ident(c.name)} SET DEFAULT ${c.default}`])]
      : []),
    ...(c.notNull ? setNotNullSafely(facts.table, c.name, names.notNullCheck(c.name)) : []),
    ...(c.unique
      ? facts.partitioning
        ? buildPartitionedIndex(facts.table, facts.partitioning.partitions, declaredUnique(c, names), `the unique index on ${c.name}`)
        : addUniqueSafely(facts.table, c.name, names.uniqueIndex(c.name), c.uniqueWith)
      : []),
  ]);
}

/** A declared UNIQUE on a partitioned table, as a constraint on it and on each partition. */
function declaredUnique(c: NewColumn, names: ObjectNames): PartitionedIndex {
  const columns = [c.name, ...(c.uniqueWith ?? [])].map(ident).join(', ');
  return {
    name: unquote(names.uniqueIndex(c.name)),
    unique: true,
    definition: `(${columns})`,
    constraint: { definition: `UNIQUE (${columns})`, deferrable: 'no' },
    partitionName: (p) => partitionIndexName(p, c.name, 'pgshift_uq'),
  };
}

/** Undo `enforceDeclared`: every statement catalog-only. */
function releaseDeclared(change: ColumnChange, names: ObjectNames, facts: PlanFacts): Step[] {
  const t = qualified(facts.table);
  const parts = change.new.flatMap((c) => [
    ...(c.unique ? [`DROP CONSTRAINT IF EXISTS ${names.uniqueIndex(c.name)}`] : []),
    ...(c.notNull ? [`ALTER COLUMN ${ident(c.name)} DROP NOT NULL`, `DROP CONSTRAINT IF EXISTS ${names.notNullCheck(c.name)}`] : []),
    ...(c.default !== null && c.defaultFrom === 'switch-read' ? [`ALTER COLUMN ${ident(c.name)} DROP DEFAULT`] : []),
  ]);
  // An index built but never attached (an interrupted switch-read) is not dropped with the constraint.
  const leftovers = change.new
    .filter((c) => c.unique)
    .flatMap((c) =>
      facts.partitioning
        ? dropPartitionedIndex(facts.table, facts.partitioning.partitions, declaredUnique(c, names))
        : [`DROP INDEX IF EXISTS ${ident(facts.table.schema)}.${names.uniqueIndex(c.name)}`],
    );
  return parts.length
    ? [ddl('drop what switch-read enforced on the new columns (catalog-only)', 'ACCESS EXCLUSIVE', [`ALTER TABLE ${t} ${parts.join(', ')}`, ...leftovers])]
    : [];
}
