import { z } from 'zod';
import { display, ident, literal, qualified } from '../../../db/ident.js';
import { ddl, emptyProgram } from '../../steps.js';
import { archivedColumns, noneOfColumns, recordArchive, renameColumns } from '../../archive.js';
import { identifier, sqlExpression } from '../fields.js';
import { needTargets, oldFacts, proposed, type ChangeKindModule, type KindProblem } from '../kind.js';

const schema = z.strictObject({
  column: identifier,
  /**
   * The value new code's inserts get, which do not name the column: needed
   * when it is NOT NULL without a default of its own, set from expand (a
   * default applies to new rows only: catalog-only) until contract drops it.
   */
  default: sqlExpression.optional(),
});

/** What a drop learns at plan start, kept in the plan's facts under `drop`. */
export interface DropFacts {
  readonly drop: {
    /** expand sets `drop.default` as the column's default (it is NOT NULL and has none). */
    readonly setDefault: boolean;
  };
}

/**
 * `drop: { column, default? }`: a column removed across releases. New code
 * stops reading and writing it (so from switch-read on its inserts must not
 * fail on it: a NOT NULL column without a default needs `drop.default`),
 * old code keeps writing it until stop-write, and contract drops it. It
 * adds no column, so it has a program of its own instead of the shared
 * old ↔ new one: no trigger, no backfill, nothing to verify.
 */
export const drop = {
  name: 'drop',
  summary: 'remove a column',
  usage: 'nothing more: plan new drop table.column',
  schema,
  carries: false,
  inverse: false,
  outline: (change) => ({
    reads: [change.column],
    adds: [],
    expressions: change.default === undefined ? [] : [{ field: 'drop.default', sql: change.default, over: 'new', gives: change.column }],
  }),
  learn: async (change, { tableFacts, objects, views }) => {
    const problems: KindProblem[] = [];
    const column = tableFacts.columns.find((c) => c.name === change.column)!;
    const found = objects.get(change.column)!;
    const needsDefault = column.notNull && column.default === null;
    if (needsDefault && change.default === undefined)
      problems.push({
        path: 'drop.default',
        message: `column "${change.column}" is NOT NULL without a default, so new code's inserts, which leave it out, would fail from switch-read; give drop.default, the value they should get until contract`,
      });
    if (!needsDefault && change.default !== undefined)
      problems.push({
        path: 'drop.default',
        message:
          column.default !== null
            ? `column "${change.column}" already has a default (${column.default}); remove drop.default`
            : `column "${change.column}" is nullable, so new code's inserts leave it NULL; remove drop.default`,
      });
    for (const v of views)
      problems.push({
        path: 'drop',
        message:
          `${v.kind === 'view' ? 'view' : 'materialized view'} ${display(v.view)} reads "${change.column}", and DROP COLUMN would fail on it; ` +
          'create a view without the column under another name, move its readers there, and drop the old view before contract',
      });
    for (const fk of found.constraints.filter((c) => c.kind === 'foreign-key' && c.direction === 'from'))
      problems.push({
        path: 'drop',
        message: `foreign key ${fk.name} uses "${change.column}"; drop the constraint first (ALTER TABLE … DROP CONSTRAINT ${fk.name}), then the column`,
      });
    return { problems, facts: { drop: { setDefault: needsDefault } } };
  },
  resolve: (change, facts) => {
    const old = oldFacts(facts, change.column);
    return { old: [{ name: old.name, type: old.type, notNull: old.notNull, default: old.default, reverse: 'NULL' }], new: [] };
  },
  program: (change, facts, names) => {
    const t = qualified(facts.table);
    const col = ident(change.column);
    const drop = facts.drop ?? { setDefault: false };
    const hasDefault = `SELECT EXISTS (SELECT 1 FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
        WHERE d.adrelid = to_regclass(${literal(t)}) AND a.attname = ${literal(change.column)}) AS done`;
    const program = emptyProgram();
    if (drop.setDefault && change.default !== undefined) {
      // ALTER COLUMN … SET/DROP DEFAULT take ACCESS EXCLUSIVE for a catalog update only: a default applies to rows inserted later, nothing is rewritten.
      program.expand = {
        apply: [
          ddl(
            `default ${change.column} to ${change.default} for new code's inserts (catalog-only)`,
            'ACCESS EXCLUSIVE',
            [`ALTER TABLE ${t} ALTER COLUMN ${col} SET DEFAULT ${change.default}`],
            hasDefault,
          ),
        ],
        rollback: [ddl(`remove the default of ${change.column} (catalog-only)`, 'ACCESS EXCLUSIVE', [`ALTER TABLE ${t} ALTER COLUMN ${col} DROP DEFAULT`])],
      };
    }
    const archived = archivedColumns(names.plan, [change.column]);
    program.contract = {
      apply: [
        // The column's indexes go first, CONCURRENTLY (see runner/drop-indexes), so no write keeps paying for them.
        {
          kind: 'drop-indexes',
          description: `drop the indexes on ${change.column} concurrently (reads and writes go on), recording their definitions for contract's rollback`,
          table: facts.table,
          columns: [change.column],
        },
        // RENAME COLUMN takes ACCESS EXCLUSIVE for a catalog update only. NOT NULL and the default stay: new code's inserts, which leave the column out, still satisfy them.
        ddl(
          `archive ${change.column} as ${archived[0]!.archive} (catalog-only)`,
          'ACCESS EXCLUSIVE',
          renameColumns(facts.table, archived),
          noneOfColumns(facts.table, [change.column]),
        ),
        recordArchive(archived),
      ],
      rollback: [
        ddl(
          `give ${archived[0]!.archive} its name back (catalog-only); rows inserted since contract keep the value they got (the default, or NULL)`,
          'ACCESS EXCLUSIVE',
          renameColumns(facts.table, archived, true),
          noneOfColumns(facts.table, [archived[0]!.archive]),
        ),
        { kind: 'restore-indexes', description: `build again CONCURRENTLY the indexes contract dropped on ${change.column}`, table: facts.table },
      ],
    };
    return program;
  },
  uniques: () => [],
  propose(request) {
    needTargets(request, 0, this.usage);
    const old = request.old[0]!;
    return { column: old.name, ...(old.notNull && old.default === null ? { default: proposed(null, old.type) } : {}) };
  },
} satisfies ChangeKindModule<'drop', typeof schema, DropFacts>;
