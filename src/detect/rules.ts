import { as, list, rangeVar, startOf, str, tableKey, typeOf, typeText, type Node, type TableRef } from './ast.js';
import type { ParsedStatement } from './sql-files.js';

/** What `detect` found unsafe, and what to do instead. */
export type FindingRule =
  'rename-column' | 'drop-add-rename' | 'retype-rewrite' | 'set-not-null' | 'index-not-concurrent' | 'constraint-validated' | 'constraint-builds-index';

/** A column change pgshift can run instead, as detected. */
export type ColumnChangeSuggestion =
  | { readonly kind: 'rename'; readonly table: TableRef; readonly column: string; readonly to: string }
  | { readonly kind: 'retype'; readonly table: TableRef; readonly column: string; readonly to: string; readonly using: string | undefined };

/** One unsafe statement. */
export interface Finding {
  readonly file: string;
  readonly line: number;
  readonly rule: FindingRule;
  /** The table it changes, as written (`schema.table` or `table`). */
  readonly table: string;
  /** Why it breaks running code or takes a long lock. */
  readonly why: string;
  /** What to do instead. */
  readonly fix: string;
  /** The pgshift plan that replaces it, for the column changes pgshift handles. */
  readonly change?: ColumnChangeSuggestion | undefined;
}

const shown = (t: TableRef): string => (t.schema ? `${t.schema}.${t.name}` : t.name);

/** What one file has said so far about its tables, to judge the statements after. */
interface FileState {
  /** Tables the file itself creates: no running code uses them yet, nothing on them is unsafe. */
  readonly created: Set<string>;
  /** CHECK (col IS NOT NULL) constraints added NOT VALID, by name, with their table and column. */
  readonly pendingChecks: Map<string, { table: string; column: string }>;
  /** `table.column` proved NOT NULL by a valid CHECK: a later SET NOT NULL needs no scan. */
  readonly provedNotNull: Set<string>;
  /** Columns dropped, per table, in order, waiting for an ADD COLUMN that makes them a rename. */
  readonly dropped: Map<string, { column: string; line: number; table: TableRef }[]>;
}

/**
 * Every unsafe statement of one migration file, in order. "Unsafe" is what
 * breaks the code running during a deploy (a column renamed or retyped under
 * it) or takes a lock that queues the application for a table scan or
 * rewrite. Statements on a table the same file creates are safe: nothing
 * uses it yet.
 */
export function findUnsafe(statements: readonly ParsedStatement[]): Finding[] {
  const state: FileState = { created: new Set(), pendingChecks: new Map(), provedNotNull: new Set(), dropped: new Map() };
  const findings: Finding[] = [];
  for (const s of statements) findings.push(...judge(s, state));
  return findings;
}

function judge(s: ParsedStatement, state: FileState): Finding[] {
  const at = (rule: FindingRule, table: TableRef, why: string, fix: string, change?: ColumnChangeSuggestion): Finding => ({
    file: s.file,
    line: s.line,
    rule,
    table: shown(table),
    why,
    fix,
    change,
  });
  const type = typeOf(s.node);
  const body = as(s.node, type ?? '') ?? {};
  if (type === 'CreateStmt') {
    const t = rangeVar(body.relation);
    if (t) state.created.add(tableKey(t));
    return [];
  }
  if (type === 'RenameStmt' && body.renameType === 'OBJECT_COLUMN') {
    const t = rangeVar(body.relation);
    const column = str(body.subname);
    const to = str(body.newname);
    if (!t || !column || !to || state.created.has(tableKey(t))) return [];
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
  if (type === 'IndexStmt') {
    const t = rangeVar(body.relation);
    if (!t || body.concurrent === true || state.created.has(tableKey(t))) return [];
    return [
      at(
        'index-not-concurrent',
        t,
        `CREATE ${body.unique ? 'UNIQUE ' : ''}INDEX without CONCURRENTLY holds a SHARE lock on ${shown(t)} for the whole build: every write waits`,
        'CREATE INDEX CONCURRENTLY, outside a transaction (most migration tools need a per-migration "no transaction" setting)',
      ),
    ];
  }
  if (type === 'AlterTableStmt' && (body.objtype === undefined || body.objtype === 'OBJECT_TABLE')) {
    const t = rangeVar(body.relation);
    if (!t) return [];
    const key = tableKey(t);
    const fresh = state.created.has(key);
    const cmds = list(body.cmds).map((c) => as(c, 'AlterTableCmd') ?? {});
    const out: Finding[] = [];
    for (const cmd of cmds) out.push(...judgeCommand(cmd, t, key, fresh, cmds.length === 1, s, state, at));
    return out;
  }
  return [];
}

function judgeCommand(
  cmd: Node,
  t: TableRef,
  key: string,
  fresh: boolean,
  alone: boolean,
  s: ParsedStatement,
  state: FileState,
  at: (rule: FindingRule, table: TableRef, why: string, fix: string, change?: ColumnChangeSuggestion) => Finding,
): Finding[] {
  const name = str(cmd.name);
  switch (cmd.subtype) {
    case 'AT_DropColumn': {
      if (!name || fresh) return [];
      const list = state.dropped.get(key) ?? [];
      list.push({ column: name, line: s.line, table: t });
      state.dropped.set(key, list);
      return [];
    }
    case 'AT_AddColumn': {
      const added = str(as(cmd.def, 'ColumnDef')?.colname);
      const drop = state.dropped.get(key)?.shift();
      if (!added || !drop || fresh) return [];
      // A column dropped and another added to the same table in one migration is
      // how some tools (Prisma among them) write a renamed field: the data is lost.
      return [
        {
          ...at(
            'drop-add-rename',
            drop.table,
            `DROP COLUMN ${drop.column} then ADD COLUMN ${added}: if this is a rename, every value of "${drop.column}" is lost, and running code that uses "${drop.column}" fails`,
            `if "${added}" is "${drop.column}" renamed, rename it with pgshift instead (data kept, both names work during the deploy)`,
            { kind: 'rename', table: drop.table, column: drop.column, to: added },
          ),
          line: drop.line,
        },
      ];
    }
    case 'AT_AlterColumnType': {
      if (!name || fresh) return [];
      const def = as(cmd.def, 'ColumnDef');
      const to = (alone ? writtenType(def, s) : undefined) ?? typeText(def?.typeName);
      const usingStart = startOf(def?.raw_default);
      const using = alone && usingStart !== undefined ? s.text.slice(usingStart - s.offset).replace(/[\s;]+$/, '') : undefined;
      return [
        at(
          'retype-rewrite',
          t,
          `ALTER COLUMN ${name} TYPE ${to ?? '…'}: unless the old type is binary-coercible to the new one, PostgreSQL rewrites ${shown(t)} and its indexes under ACCESS EXCLUSIVE (no reads or writes meanwhile), and running code may not handle the new type`,
          'retype it with pgshift: a new column kept in sync, or one catalog-only ALTER when a probe proves nothing is rewritten',
          to ? { kind: 'retype', table: t, column: name, to, using } : undefined,
        ),
      ];
    }
    case 'AT_SetNotNull': {
      if (!name || fresh || state.provedNotNull.has(`${key}.${name}`)) return [];
      return [
        at(
          'set-not-null',
          t,
          `SET NOT NULL on ${name} scans ${shown(t)} under ACCESS EXCLUSIVE: no reads or writes until every row is checked`,
          `first ADD CONSTRAINT … CHECK (${name} IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (reads and writes go on), then SET NOT NULL (no scan), then drop the check`,
        ),
      ];
    }
    case 'AT_ValidateConstraint': {
      const pending = name ? state.pendingChecks.get(name) : undefined;
      if (pending) state.provedNotNull.add(`${pending.table}.${pending.column}`);
      return [];
    }
    case 'AT_AddConstraint':
      return judgeConstraint(as(cmd.def, 'Constraint') ?? {}, t, key, fresh, state, at);
    default:
      return [];
  }
}

function judgeConstraint(
  c: Node,
  t: TableRef,
  key: string,
  fresh: boolean,
  state: FileState,
  at: (rule: FindingRule, table: TableRef, why: string, fix: string) => Finding,
): Finding[] {
  const conname = str(c.conname) ?? '';
  const notNullOf = notNullColumn(c.raw_expr);
  if (c.contype === 'CONSTR_CHECK' && notNullOf) {
    if (c.skip_validation === true) state.pendingChecks.set(conname, { table: key, column: notNullOf });
    else state.provedNotNull.add(`${key}.${notNullOf}`);
  }
  if (fresh) return [];
  if ((c.contype === 'CONSTR_CHECK' || c.contype === 'CONSTR_FOREIGN') && c.skip_validation !== true) {
    const what = c.contype === 'CONSTR_CHECK' ? 'CHECK' : 'FOREIGN KEY';
    const lock = c.contype === 'CONSTR_CHECK' ? 'ACCESS EXCLUSIVE (no reads or writes)' : 'SHARE ROW EXCLUSIVE on both tables (no writes)';
    return [
      at(
        'constraint-validated',
        t,
        `ADD CONSTRAINT ${conname || what} ${what} without NOT VALID checks every row of ${shown(t)} under ${lock}`,
        `ADD CONSTRAINT … NOT VALID (catalog-only), then VALIDATE CONSTRAINT ${conname || '…'} in its own transaction (reads and writes go on)`,
      ),
    ];
  }
  if ((c.contype === 'CONSTR_UNIQUE' || c.contype === 'CONSTR_PRIMARY') && !c.indexname) {
    return [
      at(
        'constraint-builds-index',
        t,
        `ADD CONSTRAINT ${conname || (c.contype === 'CONSTR_UNIQUE' ? 'UNIQUE' : 'PRIMARY KEY')} builds its index under ACCESS EXCLUSIVE on ${shown(t)}: no reads or writes for the whole build`,
        'CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT … USING INDEX (catalog-only)',
      ),
    ];
  }
  return [];
}

/** The column of a `col IS NOT NULL` expression. */
function notNullColumn(expr: unknown): string | undefined {
  const test = as(expr, 'NullTest');
  if (!test || test.nulltesttype !== 'IS_NOT_NULL') return undefined;
  const fields = list(as(test.arg, 'ColumnRef')?.fields);
  return fields.length === 1 ? str(as(fields[0], 'String')?.sval) : undefined;
}

/** The type as the file wrote it (`DECIMAL(10,2)`), from its location up to USING or the end. */
function writtenType(def: Node | undefined, s: ParsedStatement): string | undefined {
  const start = (def?.typeName as Node | undefined)?.location;
  if (typeof start !== 'number') return undefined;
  const usingAt = startOf(def?.raw_default);
  const text = s.text.slice(start - s.offset, usingAt === undefined ? undefined : usingAt - s.offset);
  return (
    text
      .replace(/\s+USING\s*$/i, '')
      .replace(/[\s;]+$/, '')
      .trim() || undefined
  );
}
