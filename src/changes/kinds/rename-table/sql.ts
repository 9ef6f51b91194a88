import { ident, literal, qualified, type QualifiedName } from '../../../db/ident.js';
import type { RenameTableFacts, TableGrant } from './learn.js';

/**
 * The compatibility view under the table's old name: every column of the
 * renamed table, so PostgreSQL makes it automatically updatable (one table,
 * no aggregate, no DISTINCT): old code's INSERT, UPDATE and DELETE go
 * through to the table, its defaults, constraints and triggers. From
 * PostgreSQL 15 it is `security_invoker`: the caller's privileges and row
 * policies are checked on the table. Before, the view's owner's are, so it is
 * given to the table's owner, and has the table's grants (`learn` refused a
 * table with row-level security there).
 */
export function createViewStatements(view: QualifiedName, table: QualifiedName, facts: RenameTableFacts['renameTable']): string[] {
  const v = qualified(view);
  return [
    `CREATE VIEW ${v}${facts.securityInvoker ? ' WITH (security_invoker = true)' : ''} AS SELECT * FROM ${qualified(table)}`,
    `COMMENT ON VIEW ${v} IS ${literal(`pgshift: old code's name for ${table.name} until the plan renaming it contracts`)}`,
    // A no-op when the runner is the owner; otherwise a superuser or a member of the owner role gives it away.
    `ALTER VIEW ${v} OWNER TO ${ident(facts.owner)}`,
    ...facts.grants.map((g) => grantStatement(v, g)),
  ];
}

function grantStatement(v: string, g: TableGrant): string {
  const columns = g.columns ? ` (${g.columns.map(ident).join(', ')})` : '';
  return `GRANT ${g.privileges.map((p) => `${p}${columns}`).join(', ')} ON ${v} TO ${g.grantee === null ? 'PUBLIC' : ident(g.grantee)}${g.grantable ? ' WITH GRANT OPTION' : ''}`;
}

/** `done` when `name` is a view (switch-read applied; contract not yet). */
export function isView(name: QualifiedName): string {
  return `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass(${literal(qualified(name))}) AND relkind = 'v') AS done`;
}

/** `done` when `name` is no view (before switch-read, or contract dropped it). */
export function isNotView(name: QualifiedName): string {
  return `SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass(${literal(qualified(name))}) AND relkind = 'v') AS done`;
}

/** `done` when `name` is a table (plain or partitioned). */
export function isTable(name: QualifiedName): string {
  return `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass(${literal(qualified(name))}) AND relkind IN ('r', 'p')) AS done`;
}
