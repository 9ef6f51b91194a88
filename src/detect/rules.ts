import { as, list, rangeVar, str, tableKey, typeOf, type Node, type ParsedStatement, type TableRef } from './ast.js';
import { judgeAlterTable } from './alter.js';
import { newTransaction, shown, type At, type FileState, type Finding } from './context.js';
import { indexSuggestion } from './index-plan.js';
import { pairDrops } from './pairing.js';
import { renameTableFinding } from './rename-table.js';
import { SchemaModel } from './schema.js';

export type { Finding } from './context.js';

/**
 * Every unsafe statement of one migration file, in line order. "Unsafe" is
 * what breaks the code running during a deploy (a column or table renamed,
 * dropped or retyped under it, a required column it does not write) or takes
 * a lock that queues the application behind a table scan or rewrite.
 * Statements on a table, view or materialized view the same file creates are
 * safe: nothing uses it yet. `schema` carries the tables the files read
 * before this one define, so a folder is judged in order; the file's own
 * statements are added to it.
 */
export function findUnsafe(statements: readonly ParsedStatement[], schema: SchemaModel = new SchemaModel()): Finding[] {
  const state: FileState = {
    schema,
    created: new Set(),
    createdTypes: new Set(),
    pendingChecks: new Map(),
    provedNotNull: new Set(),
    dropped: [],
    added: [],
    renamedAway: new Map(),
    tx: newTransaction(),
  };
  const findings: Finding[] = [];
  for (const s of statements) findings.push(...judge(s, state));
  findings.push(...pairDrops(state, statements[0]?.file ?? ''), ...state.renamedAway.values());
  return findings.sort((a, b) => a.line - b.line);
}

function judge(s: ParsedStatement, state: FileState): Finding[] {
  const at: At = (rule, table, why, fix, change) => ({
    file: s.file,
    line: s.line,
    rule,
    table: typeof table === 'string' ? table : shown(table),
    why,
    fix,
    change,
  });
  const type = typeOf(s.node);
  const body = as(s.node, type ?? '') ?? {};
  switch (type) {
    case 'TransactionStmt':
      if (['TRANS_STMT_COMMIT', 'TRANS_STMT_ROLLBACK', 'TRANS_STMT_PREPARE'].includes(String(body.kind))) state.tx = newTransaction();
      return [];
    case 'CreateStmt': {
      const t = rangeVar(body.relation);
      if (t) {
        state.created.add(tableKey(t));
        state.schema.createTable(tableKey(t), list(body.tableElts));
        // A table renamed away and created anew under its name: running code finds the name.
        state.renamedAway.delete(tableKey(t));
      }
      return [];
    }
    case 'ViewStmt':
    case 'CreateTableAsStmt': {
      const t = rangeVar(type === 'ViewStmt' ? body.view : (body.into as Node | undefined)?.rel);
      if (t) {
        state.created.add(tableKey(t));
        state.renamedAway.delete(tableKey(t));
      }
      return [];
    }
    case 'CreateEnumStmt':
    case 'CompositeTypeStmt':
    case 'CreateDomainStmt': {
      const names = type === 'CompositeTypeStmt' ? rangeVar(body.typevar) : nameList(type === 'CreateEnumStmt' ? body.typeName : body.domainname);
      if (names) {
        state.createdTypes.add(tableKey(names));
        state.renamedAway.delete(tableKey(names));
      }
      return [];
    }
    case 'RenameStmt':
      return judgeRename(body, state, at);
    case 'DropStmt':
      return judgeDrop(body, state, at);
    case 'IndexStmt': {
      const t = rangeVar(body.relation);
      if (!t || body.concurrent === true || state.created.has(tableKey(t))) return [];
      state.tx.writeLocked.add(tableKey(t));
      return [
        at(
          'index-not-concurrent',
          t,
          `CREATE ${body.unique ? 'UNIQUE ' : ''}INDEX without CONCURRENTLY holds a SHARE lock on ${shown(t)} for the whole build: every write waits`,
          'CREATE INDEX CONCURRENTLY, outside a transaction (most migration tools need a per-migration "no transaction" setting), or a pgshift `index` plan, which runs it as a phase',
          indexSuggestion(body, t),
        ),
      ];
    }
    case 'LockStmt':
      // LOCK TABLE's default is ACCESS EXCLUSIVE (8); SHARE (5) and up block writes.
      for (const r of list(body.relations)) {
        const t = rangeVar(as(r, 'RangeVar'));
        if (t && (typeof body.mode !== 'number' || body.mode >= 5)) state.tx.writeLocked.add(tableKey(t));
      }
      return [];
    case 'UpdateStmt':
    case 'DeleteStmt': {
      // Rows are read by a scan unless the WHERE finds them through an index, which the file cannot tell: under a lock that
      // blocks writes, the application waits for the whole statement and for the rest of the transaction.
      const t = rangeVar(body.relation);
      if (!t || state.created.has(tableKey(t)) || !state.tx.writeLocked.has(tableKey(t))) return [];
      const verb = type === 'UpdateStmt' ? 'UPDATE' : 'DELETE';
      return [
        at(
          'update-under-lock',
          t,
          `${verb} of ${body.whereClause ? 'the matching' : 'every'} row${body.whereClause ? 's' : ''} of ${shown(t)} in a transaction that already holds a lock blocking writes on it (an earlier ALTER TABLE, CREATE INDEX or LOCK TABLE): the application waits until the table is scanned, the rows written and the transaction committed`,
          'commit the DDL first and change the rows outside its transaction, in short batches each committing on its own (pgshift backfills in keyset batches); a future pgshift `add` plan fills a new column so',
        ),
      ];
    }
    case 'AlterTableStmt':
      if (body.objtype !== undefined && body.objtype !== 'OBJECT_TABLE') return [];
      return judgeAlterTable(body, s, state, at);
    default:
      return [];
  }
}

/** A qualified name from a list of String nodes (`schema.name` or `name`). */
function nameList(l: unknown): TableRef | undefined {
  const parts = list(as(l, 'List')?.items ?? l)
    .map((n) => str(as(n, 'String')?.sval))
    .filter((n): n is string => Boolean(n));
  const name = parts.at(-1);
  return name ? { schema: parts.length > 1 ? parts.at(-2) : undefined, name } : undefined;
}

function judgeRename(body: Node, state: FileState, at: At): Finding[] {
  const to = str(body.newname);
  if (!to) return [];
  if (body.renameType === 'OBJECT_COLUMN') {
    const t = rangeVar(body.relation);
    const column = str(body.subname);
    if (!t || !column) return [];
    state.schema.renameColumn(tableKey(t), column, to);
    if (state.created.has(tableKey(t))) return [];
    state.tx.writeLocked.add(tableKey(t));
    return [
      at(
        'rename-column',
        t,
        `RENAME COLUMN ${column} TO ${to}: the code running during the deploy still uses "${column}" and fails from the moment this commits`,
        'rename it with pgshift: both names work from expand to stop-write',
        { kind: 'rename', table: t, column, to },
      ),
    ];
  }
  const isTable = body.renameType === 'OBJECT_TABLE';
  const isType = body.renameType === 'OBJECT_TYPE';
  if (!isTable && !isType) return [];
  const from = isTable ? rangeVar(body.relation) : nameList(body.object);
  if (!from) return [];
  const key = tableKey(from);
  const renamed = tableKey({ schema: from.schema, name: to });
  const fresh = isTable ? state.created : state.createdTypes;
  if (isTable) {
    state.schema.renameTable(key, renamed);
    // RENAME takes ACCESS EXCLUSIVE until the transaction ends, on the table under its new name.
    if (!fresh.has(key)) state.tx.writeLocked.add(renamed);
  }
  if (fresh.has(key)) {
    // An object this file made takes a name: if an existing one was renamed away from it, running code finds the name again.
    fresh.add(renamed);
    state.renamedAway.delete(renamed);
    return [];
  }
  state.renamedAway.set(
    key,
    isTable
      ? renameTableFinding(at, from, to)
      : at(
          'rename-type',
          from,
          `ALTER TYPE ${from.name} RENAME TO ${to}: the code running during the deploy still names "${from.name}" (casts such as $1::"${from.name}", as Prisma writes them) and fails from the moment this commits`,
          `keep the name: create the new type under its final name and retype the columns to it (a pgshift \`retype\` plan), or change the code to stop naming "${from.name}" one release before the rename`,
        ),
  );
  return [];
}

function judgeDrop(body: Node, state: FileState, at: At): Finding[] {
  if (body.removeType !== 'OBJECT_TABLE') return [];
  const out: Finding[] = [];
  for (const object of list(body.objects)) {
    const t = nameList(object);
    if (!t) continue;
    const key = tableKey(t);
    state.schema.dropTable(key);
    if (state.created.delete(key)) continue;
    out.push(
      at(
        'drop-table',
        t,
        `DROP TABLE ${shown(t)}: the code running during the deploy still reads or writes it and fails from the moment this commits, and its rows are gone (no plan can bring them back)`,
        'drop it a release after the last code that names it is gone: first ship code that no longer uses it, then drop (or rename it away first, and drop once nothing failed)',
      ),
    );
  }
  return out;
}
