import { as, list, rangeVar, str, tableKey, typeText, type Node, type ParsedStatement, type TableRef } from './ast.js';
import { shown, type At, type FileState, type Finding } from './context.js';
import { addSuggestion } from './add.js';
import { columnFacts, isSerial } from './schema.js';
import { constrainNotNull } from './constrain.js';
import { retypeSpans } from './spans.js';
import { rewriteFree } from './types.js';

/** Every command of one `ALTER TABLE`, judged against the file and the schema read so far. */
export function judgeAlterTable(body: Node, s: ParsedStatement, state: FileState, at: At): Finding[] {
  const t = rangeVar(body.relation);
  if (!t) return [];
  const key = tableKey(t);
  const fresh = state.created.has(key);
  const cmds = list(body.cmds).map((c) => as(c, 'AlterTableCmd') ?? {});
  const out: Finding[] = [];
  for (const cmd of cmds) out.push(...judgeCommand(cmd, t, key, fresh, s, state, at));
  // VALIDATE CONSTRAINT takes SHARE UPDATE EXCLUSIVE, which blocks no write; every other command here blocks writes until commit.
  if (!fresh && cmds.some((c) => c.subtype !== 'AT_ValidateConstraint')) state.tx.writeLocked.add(key);
  return out;
}

function judgeCommand(cmd: Node, t: TableRef, key: string, fresh: boolean, s: ParsedStatement, state: FileState, at: At): Finding[] {
  const name = str(cmd.name);
  switch (cmd.subtype) {
    case 'AT_DropColumn': {
      if (!name) return [];
      const facts = state.schema.dropColumn(key, name);
      if (!fresh) state.dropped.push({ table: t, key, column: name, line: s.line, facts });
      return [];
    }
    case 'AT_AddColumn': {
      const def = as(cmd.def, 'ColumnDef');
      const column = str(def?.colname);
      if (!def || !column) return [];
      state.schema.addColumn(key, def);
      if (fresh) return [];
      state.added.push({ key, column, type: typeText(def.typeName) });
      return judgeAddColumn(def, column, t, key, state, at);
    }
    case 'AT_AlterColumnType': {
      if (!name) return [];
      const def = as(cmd.def, 'ColumnDef');
      const old = state.schema.column(key, name)?.type;
      const next = typeText(def?.typeName);
      state.schema.update(key, name, { type: next });
      if (fresh) return [];
      const spans = retypeSpans(def, s);
      if (!spans.using && rewriteFree(old, next)) return [];
      const to = spans.type ?? next;
      return [
        at(
          'retype-rewrite',
          t,
          `ALTER COLUMN ${name} TYPE ${to ?? '…'}: unless the old type is binary-coercible to the new one, PostgreSQL rewrites ${shown(t)} and its indexes under ACCESS EXCLUSIVE (no reads or writes meanwhile), and running code may not handle the new type`,
          'retype it with pgshift: a new column kept in sync, or one catalog-only ALTER when a probe proves nothing is rewritten',
          to ? { kind: 'retype', table: t, column: name, to, using: spans.using } : undefined,
        ),
      ];
    }
    case 'AT_SetNotNull': {
      if (!name) return [];
      state.schema.update(key, name, { notNull: true });
      if (fresh || state.provedNotNull.has(`${key}.${name}`)) return [];
      return [
        at(
          'set-not-null',
          t,
          `SET NOT NULL on ${name} scans ${shown(t)} under ACCESS EXCLUSIVE: no reads or writes until every row is checked, and old code that writes NULL fails after it`,
          `first ADD CONSTRAINT … CHECK (${name} IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT in its own transaction (reads and writes go on), then SET NOT NULL (no scan), then drop the check; the pgshift \`constrain\` plan does this and fixes old code's NULLs`,
          constrainNotNull(t, name),
        ),
      ];
    }
    case 'AT_DropNotNull':
      if (name) state.schema.update(key, name, { notNull: false });
      return [];
    case 'AT_ValidateConstraint': {
      const pending = name ? state.pendingChecks.get(name) : undefined;
      if (pending) state.provedNotNull.add(`${pending.table}.${pending.column}`);
      if (!name || fresh || !state.tx.notValid.has(`${key}.${name}`)) return [];
      return [
        at(
          'validate-same-transaction',
          t,
          `VALIDATE CONSTRAINT ${name} runs in the transaction that added it NOT VALID, which still holds that ADD's lock on ${shown(t)} (ACCESS EXCLUSIVE for a CHECK, SHARE ROW EXCLUSIVE for a foreign key): the scan NOT VALID was meant to move out of the lock runs under it`,
          'commit the ADD … NOT VALID first: VALIDATE CONSTRAINT in a migration (or transaction) of its own',
        ),
      ];
    }
    case 'AT_AddConstraint':
      return judgeConstraint(as(cmd.def, 'Constraint') ?? {}, t, key, fresh, state, at);
    default:
      return [];
  }
}

/** Functions whose default PostgreSQL must evaluate for every existing row: the ADD COLUMN rewrites the table. */
const VOLATILE = new Set([
  'gen_random_uuid',
  'uuid_generate_v1',
  'uuid_generate_v1mc',
  'uuid_generate_v4',
  'uuidv4',
  'uuidv7',
  'random',
  'clock_timestamp',
  'timeofday',
  'nextval',
]);

function judgeAddColumn(def: Node, column: string, t: TableRef, key: string, state: FileState, at: At): Finding[] {
  const constraints = list(def.constraints).map((c) => as(c, 'Constraint') ?? {});
  const dflt = constraints.find((c) => c.contype === 'CONSTR_DEFAULT');
  const generated = constraints.find((c) => c.contype === 'CONSTR_IDENTITY' || c.contype === 'CONSTR_GENERATED');
  const out: Finding[] = [];
  const rewrite = isSerial(def)
    ? `ADD COLUMN ${column} ${typeText(def.typeName) ?? ''}: a serial's default is nextval(), evaluated for every existing row`
    : generated
      ? `ADD COLUMN ${column} GENERATED …: ${generated.contype === 'CONSTR_IDENTITY' ? 'an identity' : 'a stored generated column'} is computed for every existing row`
      : dflt && volatileCall(dflt.raw_expr)
        ? `ADD COLUMN ${column} DEFAULT ${volatileCall(dflt.raw_expr)}(): a volatile default is evaluated for every existing row`
        : undefined;
  if (rewrite)
    out.push(
      at(
        'add-column-rewrite',
        t,
        `${rewrite}, so PostgreSQL rewrites ${shown(t)} and its indexes under ACCESS EXCLUSIVE: no reads or writes meanwhile`,
        'add the column without a default (catalog-only), set the default for new rows, and fill existing rows in batches: a pgshift `add` plan does this',
        dflt && volatileCall(dflt.raw_expr) ? addSuggestion(def, column, t, dflt) : undefined,
      ),
    );
  else if (columnFacts(def).notNull && !dflt)
    out.push(
      at(
        'add-column-required',
        t,
        `ADD COLUMN ${column} NOT NULL without a default fails on a table with rows, and once it exists the code running during the deploy, which does not write "${column}", fails on every insert`,
        `add it nullable (or with a default), fill it, then make it NOT NULL the safe way: a pgshift \`add\` plan takes "${column}" through the phases with a value for every row`,
        addSuggestion(def, column, t, undefined),
      ),
    );
  for (const c of constraints) {
    if (c.contype === 'CONSTR_CHECK' || c.contype === 'CONSTR_FOREIGN' || c.contype === 'CONSTR_UNIQUE' || c.contype === 'CONSTR_PRIMARY') {
      out.push(...judgeConstraint({ ...c, conname: c.conname ?? column }, t, key, false, state, at));
    }
  }
  return out;
}

/** The name of a volatile function called anywhere in a default expression. */
function volatileCall(expr: unknown): string | undefined {
  let found: string | undefined;
  const walk = (n: unknown): void => {
    if (found || !n || typeof n !== 'object') return;
    const call = as(n, 'FuncCall');
    const fname = call ? str(as(list(call.funcname).at(-1), 'String')?.sval) : undefined;
    if (fname && VOLATILE.has(fname.toLowerCase())) found = fname;
    Object.values(n).forEach(walk);
  };
  walk(expr);
  return found;
}

function judgeConstraint(c: Node, t: TableRef, key: string, fresh: boolean, state: FileState, at: At): Finding[] {
  const conname = str(c.conname) ?? '';
  const notNullOf = notNullColumn(c.raw_expr);
  state.schema.constraint(key, c);
  if (c.contype === 'CONSTR_CHECK' && notNullOf) {
    if (c.skip_validation === true) state.pendingChecks.set(conname, { table: key, column: notNullOf });
    else state.provedNotNull.add(`${key}.${notNullOf}`);
  }
  if (fresh) return [];
  if (c.skip_validation === true && conname) state.tx.notValid.add(`${key}.${conname}`);
  if ((c.contype === 'CONSTR_CHECK' || c.contype === 'CONSTR_FOREIGN') && c.skip_validation !== true) {
    const what = c.contype === 'CONSTR_CHECK' ? 'CHECK' : 'FOREIGN KEY';
    const lock = c.contype === 'CONSTR_CHECK' ? 'ACCESS EXCLUSIVE (no reads or writes)' : 'SHARE ROW EXCLUSIVE on both tables (no writes)';
    return [
      at(
        'constraint-validated',
        t,
        `ADD CONSTRAINT ${conname || what} ${what} without NOT VALID checks every row of ${shown(t)} under ${lock}`,
        `ADD CONSTRAINT … NOT VALID (catalog-only), then VALIDATE CONSTRAINT ${conname || '…'} in its own transaction (reads and writes go on); a future pgshift \`constrain\` plan will do this while old code still writes`,
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
