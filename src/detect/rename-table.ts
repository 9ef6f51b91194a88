import { stringify } from 'yaml';
import type { TableRef } from './ast.js';
import type { At, ColumnChangeSuggestion, Finding } from './context.js';

/** A table renamed in a migration: pgshift's `rename-table` plan instead. */
type RenameTableSuggestion = Extract<ColumnChangeSuggestion, { kind: 'rename-table' }>;

/** `ALTER TABLE from RENAME TO to` on a table that existed before the file: the finding, with the plan that replaces it. */
export function renameTableFinding(at: At, from: TableRef, to: string): Finding {
  return at(
    'rename-table',
    from,
    `RENAME TO ${to}: the code running during the deploy still queries "${from.name}" and fails from the moment this commits`,
    'rename it with pgshift: from switch-read the table has its new name and old code uses a view under the old one, until contract drops it',
    { kind: 'rename-table', table: from, to },
  );
}

/** The plan file for a detected table rename. */
export function renameTablePlan(change: RenameTableSuggestion, name: string, table: string, source: string): string {
  return `# Written by \`migrate plan detect\` for ${source}.\n${stringify({ plan: name, table, 'rename-table': { to: change.to } })}`;
}
