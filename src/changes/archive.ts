import { ident, literal, objectName, qualified, type QualifiedName } from '../db/ident.js';
import { contractViewStatements, type DependentView } from './dependent-views.js';
import { ddl, type ArchivedColumn, type PhaseProgram, type RecordArchiveStep, type SqlStep, type Step } from './steps.js';

/*
 * contract keeps what it used to drop (issue 20): the old columns are renamed
 * aside, out of every name code uses, and dropped later by `plan purge` or by
 * the first `apply` after `contract.keep`. Until then contract can be rolled
 * back. A column rename is a catalog update: no row is read or rewritten.
 */

/**
 * The name an old column is archived under: `_pgshift_<plan>_<column>`,
 * shortened with a hash past 63 bytes (`objectName`), so the same plan and
 * column always give the same name. No code names it; `apply` refuses a plan
 * whose archive name is already a column of the table (plan/name-clash.ts).
 */
export function archiveName(plan: string, column: string): string {
  return objectName('_pgshift', plan, column);
}

/** Each of `columns` with its archive name. */
export function archivedColumns(plan: string, columns: readonly string[]): ArchivedColumn[] {
  return columns.map((column) => ({ column, archive: archiveName(plan, column) }));
}

/**
 * `ALTER TABLE … RENAME COLUMN` each column to its archive name (`back`:
 * the other way). One statement per column: PostgreSQL renames one column
 * per statement. Each takes ACCESS EXCLUSIVE for a catalog update only.
 */
export function renameColumns(table: QualifiedName, columns: readonly ArchivedColumn[], back = false): string[] {
  const t = qualified(table);
  return columns.map((c) =>
    back
      ? `ALTER TABLE ${t} RENAME COLUMN ${ident(c.archive)} TO ${ident(c.column)}`
      : `ALTER TABLE ${t} RENAME COLUMN ${ident(c.column)} TO ${ident(c.archive)}`,
  );
}

/** A query giving `done` = true when none of `names` is a column of `table` (the renames that remove them were made). */
export function noneOfColumns(table: QualifiedName, names: readonly string[]): string {
  return `SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = pg_catalog.to_regclass(${literal(qualified(table))})
            AND attname IN (${names.map(literal).join(', ')}) AND NOT attisdropped) AS done`;
}

/** The step that records what contract archives. */
export function recordArchive(columns: readonly ArchivedColumn[]): RecordArchiveStep {
  return {
    kind: 'record-archive',
    description: `record ${columns.map((c) => `${c.column} as ${c.archive}`).join(', ')} in the plan's state, kept for contract.keep (0: purged now)`,
    columns,
  };
}

/** What a program's contract archives: the columns of its record step (none for a plan whose contract archives nothing). */
export function archivedBy(program: PhaseProgram): readonly ArchivedColumn[] {
  const step = program.contract.apply.find((s: Step): s is RecordArchiveStep => s.kind === 'record-archive');
  return step?.columns ?? [];
}

/**
 * Purge: drop the archived columns, and the original materialized views
 * stop-write parked (they read the old columns, so DROP COLUMN would fail on
 * them). `DROP COLUMN` takes ACCESS EXCLUSIVE but only marks the column
 * dropped in the catalog: no row is rewritten, its space comes back as rows
 * are updated. Indexes still on the columns (those backing a constraint, or
 * partitioned ones, which contract could not drop CONCURRENTLY) go with them
 * and their files are unlinked at COMMIT, under that lock. After it,
 * contract can no longer be rolled back.
 */
export function purgeSteps(table: QualifiedName, columns: readonly ArchivedColumn[], views?: readonly DependentView[]): SqlStep[] {
  if (!columns.length) return [];
  return [
    ddl(`drop the archived ${columns.map((c) => c.archive).join(', ')} (catalog-only); contract can no longer be rolled back`, 'ACCESS EXCLUSIVE', [
      ...contractViewStatements(views),
      `ALTER TABLE ${qualified(table)} ${columns.map((c) => `DROP COLUMN IF EXISTS ${ident(c.archive)}`).join(', ')}`,
    ]),
  ];
}
