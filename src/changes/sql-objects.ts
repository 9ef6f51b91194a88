import { ident, literal, objectName, qualified } from '../db/ident.js';
import type { ColumnChange, PlanFacts } from './model.js';

/** Dollar-quote tag for generated function bodies; plan expressions may not contain it. */
export const BODY_TAG = '$pgshift_body$';

/** Names of the objects pgshift creates for one plan. */
export interface ObjectNames {
  readonly forward: (index: number) => string;
  readonly reverse: (index: number) => string;
  readonly syncFunction: string;
  readonly trigger: string;
  readonly notNullCheck: (column: string) => string;
  readonly uniqueIndex: (column: string) => string;
}

/** Deterministic, length-safe names for a plan's generated objects. */
export function objectNames(plan: string, facts: PlanFacts): ObjectNames {
  const schema = facts.stateSchema;
  const fn = (name: string): string => qualified({ schema, name });
  return {
    forward: (i) => fn(objectName(plan, `fwd${i}`)),
    reverse: (i) => fn(objectName(plan, `rev${i}`)),
    syncFunction: fn(objectName(plan, 'sync')),
    trigger: ident(objectName('pgshift', plan)),
    notNullCheck: (column) => ident(objectName(facts.table.name, column, 'pgshift_nn')),
    uniqueIndex: (column) => ident(objectName(facts.table.name, column, 'pgshift_uq')),
  };
}

/** How the dual-write trigger syncs the two sides. */
export type SyncMode =
  /** Both ways; old columns keep their own defaults (only old code runs). */
  | 'two-way'
  /** Both ways; old columns' defaults are applied by the trigger (new code inserts too). */
  | 'two-way-defaults'
  /** New → old only: the old columns are always derived. */
  | 'one-way';

const list = (names: readonly string[], prefix = ''): string => names.map((n) => prefix + ident(n)).join(', ');

/**
 * `CREATE OR REPLACE FUNCTION` for each forward (old → new) and reverse (new →
 * old) expression. Parameters are named after the columns, so the plan's
 * expression text is the body as written. No SET clause: that keeps them
 * inlinable in the backfill's UPDATE; callers fix the search_path.
 */
export function expressionFunctions(change: ColumnChange, names: ObjectNames): string[] {
  const oldParams = change.old.map((c) => `${ident(c.name)} ${c.type}`).join(', ');
  const newParams = change.new.map((c) => `${ident(c.exprName ?? c.name)} ${c.type}`).join(', ');
  return [
    ...change.new.map(
      (c, i) =>
        `CREATE OR REPLACE FUNCTION ${names.forward(i)}(${oldParams}) RETURNS ${c.type} LANGUAGE sql\n` +
        `AS ${BODY_TAG} SELECT (${c.forward})::${c.type} ${BODY_TAG}`,
    ),
    ...change.old.map(
      (c, i) =>
        `CREATE OR REPLACE FUNCTION ${names.reverse(i)}(${newParams}) RETURNS ${c.type} LANGUAGE sql\n` +
        `AS ${BODY_TAG} SELECT (${c.reverse})::${c.type} ${BODY_TAG}`,
    ),
  ];
}

/** Calls of every forward function on `source` (e.g. `NEW.` or `` for a table). */
export function forwardCalls(change: ColumnChange, names: ObjectNames, source = ''): string[] {
  return change.new.map((_, i) => `${names.forward(i)}(${list(change.old.map((c) => c.name), source)})`);
}

/** Calls of every reverse function on `source`. */
export function reverseCalls(change: ColumnChange, names: ObjectNames, source = ''): string[] {
  return change.old.map((_, i) => `${names.reverse(i)}(${list(change.new.map((c) => c.name), source)})`);
}

/**
 * The trigger function. On INSERT the side that was given fills the other
 * (the old side wins when both are, since old code never writes the new
 * columns, unless the old side already equals what the reverse expressions
 * give from the new side: that is a row an UPDATE moved to another partition,
 * which the UPDATE branch synced on its way out, and recomputing the new side
 * from a lossy reverse would change what new code wrote); on UPDATE the side that changed fills the other (the new side
 * wins when both changed: that writer knows both). Its search_path is fixed,
 * so it behaves the same through any pooler and for any session setting.
 */
export function syncFunction(change: ColumnChange, names: ObjectNames, facts: PlanFacts, mode: SyncMode): string {
  const pad = (depth: number): string => '  '.repeat(depth);
  const assign = (cols: readonly { name: string }[], calls: string[], depth: number): string =>
    cols.map((c, i) => `${pad(depth)}NEW.${ident(c.name)} := ${calls[i]};`).join('\n');
  const fillNew = (depth: number): string => assign(change.new, forwardCalls(change, names, 'NEW.'), depth);
  const fillOld = (depth: number): string => assign(change.old, reverseCalls(change, names, 'NEW.'), depth);
  const every = (cols: readonly { name: string }[], op: 'AND' | 'OR', test: string): string =>
    cols.map((c) => `NEW.${ident(c.name)} ${test}`).join(` ${op} `);
  const row = (rec: 'NEW' | 'OLD', cols: readonly { name: string }[]): string =>
    `ROW(${cols.map((c) => `${rec}.${ident(c.name)}`).join(', ')})`;
  const defaults =
    mode === 'two-way-defaults'
      ? change.old
          .filter((c) => c.default !== null)
          .map((c) => `${pad(3)}IF NEW.${ident(c.name)} IS NULL THEN NEW.${ident(c.name)} := ${c.default}; END IF;\n`)
          .join('')
      : '';
  const body =
    mode === 'one-way'
      ? `${fillOld(1)}\n  RETURN NEW;`
      : [
          `  IF TG_OP = 'INSERT' THEN`,
          `    IF (${every(change.old, 'AND', 'IS NULL')}) AND (${every(change.new, 'OR', 'IS NOT NULL')}) THEN`,
          fillOld(3),
          // A row an UPDATE moves to another partition arrives here as an
          // INSERT with both sides set, after the UPDATE branch ran on the
          // source partition: it already holds old = reverse(new), and
          // deriving new from old again would change what new code wrote.
          `    ELSIF (${every(change.new, 'OR', 'IS NOT NULL')}) AND ${row('NEW', change.old)} IS NOT DISTINCT FROM ROW(${reverseCalls(change, names, 'NEW.').join(', ')}) THEN`,
          `      NULL;`,
          `    ELSE`,
          `${defaults}${fillNew(3)}`,
          `    END IF;`,
          `  ELSIF ${row('NEW', change.new)} IS DISTINCT FROM ${row('OLD', change.new)} THEN`,
          fillOld(2),
          `  ELSIF ${row('NEW', change.old)} IS DISTINCT FROM ${row('OLD', change.old)} THEN`,
          fillNew(2),
          `  END IF;`,
          `  RETURN NEW;`,
        ].join('\n');
  return (
    `CREATE OR REPLACE FUNCTION ${names.syncFunction}() RETURNS trigger LANGUAGE plpgsql\n` +
    `SET search_path = ${facts.searchPath}\n` +
    `AS ${BODY_TAG}\n-- pgshift sync, mode ${mode}\nBEGIN\n${body}\nEND\n${BODY_TAG}`
  );
}

/** The GUC the backfill sets in its transactions; the trigger stands aside for them. */
export const BACKFILL_SETTING = 'pgshift.backfill';

/**
 * The trigger. Its WHEN clause skips the backfill's own writes (which set the
 * new side from the old explicitly), so they cost no trigger call and never
 * re-derive the old side.
 */
export function createTrigger(names: ObjectNames, facts: PlanFacts): string {
  return (
    `CREATE OR REPLACE TRIGGER ${names.trigger} BEFORE INSERT OR UPDATE ON ${qualified(facts.table)}\n` +
    `FOR EACH ROW WHEN (current_setting(${literal(BACKFILL_SETTING)}, true) IS DISTINCT FROM 'on')\n` +
    `EXECUTE FUNCTION ${names.syncFunction}()`
  );
}
