import { z } from 'zod';
import { display, ident, qualified, type QualifiedName } from '../../../db/ident.js';
import { ddl, emptyProgram, type SqlStep } from '../../steps.js';
import { identifier } from '../fields.js';
import { needTargets, type ChangeKindModule } from '../kind.js';
import { learnRenameTable, type RenameTableFacts } from './learn.js';
import { createViewStatements, isNotView, isTable, isView } from './sql.js';

const schema = z.strictObject({ to: identifier });

/**
 * What old code cannot do through the compatibility view, which `lint`
 * says of every rename-table plan: a simple view takes SELECT, INSERT
 * (ON CONFLICT with a column list too), UPDATE, DELETE and, from
 * PostgreSQL 17, MERGE; nothing else a table takes.
 */
export const VIEW_LIMITS = [
  'DDL (ALTER TABLE … ADD/ALTER/DROP COLUMN, CREATE INDEX, CREATE TRIGGER for rows, a foreign key referencing it)',
  'COPY … FROM (and COPY … TO: use COPY (SELECT …) TO)',
  'TRUNCATE',
  'INSERT … ON CONFLICT ON CONSTRAINT (name the columns instead)',
  'MERGE before PostgreSQL 17',
  'system columns such as ctid',
  "pg_get_serial_sequence() and anything else that looks the table's own objects up by its old name",
  'LOCK TABLE, which also locks the renamed table',
];

/**
 * `rename-table: { to }`: the plan's table gets a new name while old code,
 * which names the old one, keeps working. switch-read renames the table and
 * creates an automatically updatable view under the old name, in one short
 * transaction; from then on new code uses the new name and old code the view,
 * until contract drops it. What follows the table by its oid (indexes,
 * constraints, foreign keys both ways, triggers, owned sequences, other
 * views, grants) goes with it; see docs/kinds/rename-table.md. No column
 * changes, so it has a program of its own: no trigger, no backfill.
 */
export const renameTable = {
  name: 'rename-table',
  source: 'table',
  summary: 'rename a table; old code uses a view under the old name until contract',
  usage: 'the new name: plan new rename-table schema.table new_name',
  schema,
  carries: false,
  inverse: false,
  // Every column is reached by the rename, none read or added: the release queue orders it by its table like any plan.
  outline: () => ({ reads: [], adds: [], expressions: [] }),
  learn: async (change, { client, table }) => learnRenameTable(client, table, change.to),
  resolve: () => ({ old: [], new: [] }),
  program: (change, facts) => {
    const old = facts.table;
    const renamed = { schema: old.schema, name: change.to };
    const view = facts.renameTable;
    if (!view) throw new Error(`plan facts of ${display(old)} lack renameTable, which learn records at start`);
    const program = emptyProgram();
    program['switch-read'] = {
      apply: [
        // ALTER TABLE … RENAME takes ACCESS EXCLUSIVE on the table and changes
        // only its pg_class row (and its row type's); CREATE VIEW adds a new
        // relation and reads the table's columns. Both catalog-only, in one
        // transaction, so no query ever sees the table without either name,
        // and it is held for no longer than the catalog updates take.
        ddl(
          `rename ${display(old)} to ${change.to} and create the view ${old.name} over it for old code (catalog-only)`,
          'ACCESS EXCLUSIVE',
          [`ALTER TABLE ${qualified(old)} RENAME TO ${ident(change.to)}`, ...createViewStatements(old, renamed, view)],
          isView(old),
        ),
      ],
      rollback: [
        // DROP VIEW takes ACCESS EXCLUSIVE on the view only (seen in pg_locks), the rename on the table: both tables are
        // claimed, the table waited for outside the queue and the view taken NOWAIT (LOCK TABLE on a view locks its table too).
        lockBoth(
          ddl(
            `drop the view ${old.name} and rename ${change.to} back to ${old.name} (catalog-only)`,
            'ACCESS EXCLUSIVE',
            [`DROP VIEW IF EXISTS ${qualified(old)}`, `ALTER TABLE ${qualified(renamed)} RENAME TO ${ident(old.name)}`],
            isTable(old),
          ),
          renamed,
          old,
        ),
      ],
    };
    program.contract = {
      apply: [
        // DROP VIEW takes ACCESS EXCLUSIVE on the view alone, catalog-only: the table under the new name is not locked.
        ddl(`drop the view ${old.name} old code used (catalog-only)`, 'ACCESS EXCLUSIVE', [`DROP VIEW IF EXISTS ${qualified(old)}`], isNotView(old)),
      ],
      rollback: [
        // The view again, as switch-read made it: CREATE VIEW takes ACCESS SHARE on the table it reads (no write waits)
        // and creates a relation no one holds yet; the grants and comment touch the view alone.
        {
          ...ddl(
            `create the view ${old.name} over ${change.to} again for old code (catalog-only)`,
            'ACCESS SHARE',
            createViewStatements(old, renamed, view),
            isView(old),
          ),
          locks: [{ table: renamed, mode: 'ACCESS SHARE' }],
        },
      ],
    };
    return program;
  },
  // From start to contract a plan written for the new name must wait behind this one, as one for the old name does.
  alsoNamed: (facts) => (facts.renameTable ? [{ schema: facts.table.schema, name: facts.renameTable.to }] : []),
  uniques: () => [],
  warnings: (change) => [
    `rename-table: from switch-read until contract old code reaches the table through the view under its old name, renamed to ${change.to}; ` +
      `through the view it cannot use: ${VIEW_LIMITS.join('; ')}`,
  ],
  propose(request) {
    needTargets(request, 1, this.usage);
    return { to: request.targets[0]! };
  },
} satisfies ChangeKindModule<'rename-table', typeof schema, RenameTableFacts>;

/** The step declared to lock `first` (waited for outside the queue) and then `second` (NOWAIT). */
function lockBoth(step: SqlStep, first: QualifiedName, second: QualifiedName): SqlStep {
  return {
    ...step,
    locks: [
      { table: first, mode: 'ACCESS EXCLUSIVE' },
      { table: second, mode: 'ACCESS EXCLUSIVE' },
    ],
  };
}
