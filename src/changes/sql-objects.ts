import { ident, literal, objectName, qualified } from '../db/ident.js';
import type { ColumnChange, PlanFacts } from './model.js';
import { oldCodeMark } from './old-code-mark.js';

/** Dollar-quote tag for generated function bodies; plan expressions may not contain it. */
export const BODY_TAG = '$pgshift_body$';

/** Names of the objects pgshift creates for one plan. */
export interface ObjectNames {
  /** The plan's name, as the old-code gate records it. */
  readonly plan: string;
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
    plan,
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
 * from a lossy reverse would change what new code wrote); on UPDATE the side
 * that changed fills the other (the new side wins when both changed: that
 * writer knows both).
 *
 * With `facts.inline` (plans started by this version on PostgreSQL 14+) the
 * expressions are written into the body as PostgreSQL printed them at plan
 * start, every name outside pg_catalog qualified, over block variables named
 * after the columns (`#variable_conflict use_column` binds them as a SQL
 * function binds its parameters). The body then calls no function and looks
 * up no schema of pgshift's, so every role that may write the table can run
 * it (it is SECURITY INVOKER: the writer's own rights, nothing more), and it
 * needs no `SET search_path`, which cost more than the expressions: a
 * session's search_path can no longer change what a name means. Older plans
 * keep the form they started with: calls of the expression functions under a
 * fixed search_path.
 */
export function syncFunction(change: ColumnChange, names: ObjectNames, facts: PlanFacts, mode: SyncMode): string {
  const inline = facts.inline;
  const pad = (depth: number): string => '  '.repeat(depth);
  const anyNew = change.new.map((c) => `NEW.${ident(c.name)} IS NOT NULL`).join(' OR ');
  const allOldNull = change.old.map((c) => `NEW.${ident(c.name)} IS NULL`).join(' AND ');
  const changed = (cols: readonly { name: string }[]): string =>
    cols.map((c) => `NEW.${ident(c.name)} IS DISTINCT FROM OLD.${ident(c.name)}`).join(' OR ');
  const forward = inline ? inline.forward : forwardCalls(change, names, 'NEW.');
  const reverse = inline ? inline.reverse : reverseCalls(change, names, 'NEW.');
  /** `lines` (at depth+1) with the variables one side's expressions read, when inlined. */
  const over = (side: 'old' | 'new', depth: number, lines: (depth: number) => string[]): string[] => {
    if (!inline) return lines(depth);
    const vars = side === 'old'
      ? change.old.map((c, i) => `${ident(c.name)} ${inline.oldTypes[i]} := NEW.${ident(c.name)};`)
      : change.new.map((c, i) => `${ident(c.exprName ?? c.name)} ${inline.newTypes[i]} := NEW.${ident(c.name)};`);
    return [`${pad(depth)}<<${inline.label}>> DECLARE ${vars.join(' ')}`, `${pad(depth)}BEGIN`, ...lines(depth + 1), `${pad(depth)}END;`];
  };
  const fillOld = (depth: number): string[] =>
    over('new', depth, (d) => change.old.map((c, i) => `${pad(d)}NEW.${ident(c.name)} := ${reverse[i]};`));
  const fillNew = (depth: number): string[] =>
    over('old', depth, (d) => change.new.map((c, i) => `${pad(d)}NEW.${ident(c.name)} := ${forward[i]};`));
  // A row an UPDATE moved to another partition: already synced by the UPDATE branch, kept as written.
  const keepMoved = (depth: number): string[] => [
    `${pad(depth)}IF ${anyNew} THEN`,
    ...over('new', depth + 1, (d) => [
      `${pad(d)}IF ROW(${change.old.map((c) => `NEW.${ident(c.name)}`).join(', ')}) IS NOT DISTINCT FROM ROW(${reverse.join(', ')}) THEN`,
      `${pad(d + 1)}RETURN NEW;`,
      `${pad(d)}END IF;`,
    ]),
    `${pad(depth)}END IF;`,
  ];
  const defaults = (depth: number): string[] =>
    mode === 'two-way-defaults'
      ? change.old.flatMap((c, i) => {
          const value = inline ? inline.oldDefaults[i] : c.default;
          return value === null || value === undefined ? [] : [`${pad(depth)}IF NEW.${ident(c.name)} IS NULL THEN NEW.${ident(c.name)} := ${value}; END IF;`];
        })
      : [];
  // The old-code gate's evidence (old-code-mark.ts): where a client, not the trigger, wrote the old side.
  const mark = (depth: number): string[] => oldCodeMark(names.plan, facts.stateSchema, pad(depth));
  const anyOld = change.old.map((c) => `NEW.${ident(c.name)} IS NOT NULL`).join(' OR ');
  const body =
    mode === 'one-way'
      ? [
          `  IF TG_OP = 'INSERT' THEN`,
          `    IF ${anyOld} THEN`,
          ...mark(3),
          `    END IF;`,
          `  ELSIF ${changed(change.old)} THEN`,
          ...mark(2),
          `  END IF;`,
          ...fillOld(1),
          `  RETURN NEW;`,
        ]
      : [
          `  IF TG_OP = 'INSERT' THEN`,
          `    IF (${allOldNull}) AND (${anyNew}) THEN`,
          ...fillOld(3),
          `    ELSE`,
          ...keepMoved(3),
          `      IF ${anyOld} THEN`,
          ...mark(4),
          `      END IF;`,
          ...defaults(3),
          ...fillNew(3),
          `    END IF;`,
          `  ELSIF ${changed(change.new)} THEN`,
          ...fillOld(2),
          `  ELSIF ${changed(change.old)} THEN`,
          ...mark(2),
          ...fillNew(2),
          `  END IF;`,
          `  RETURN NEW;`,
        ];
  return (
    `CREATE OR REPLACE FUNCTION ${names.syncFunction}() RETURNS trigger LANGUAGE plpgsql\n` +
    (inline ? '' : `SET search_path = ${facts.searchPath}\n`) +
    `AS ${BODY_TAG}\n${inline ? '#variable_conflict use_column\n' : ''}-- pgshift sync, mode ${mode}\nBEGIN\n${body.join('\n')}\nEND\n${BODY_TAG}`
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
