import { ident, literal, objectName, qualified } from '../db/ident.js';
import type { ColumnChange, NewColumn, PlanFacts } from './model.js';
import { oldCodeMark } from './old-code-mark.js';

/** Dollar-quote tag for generated function bodies; plan expressions may not contain it. */
export const BODY_TAG = '$pgshift_body$';

/** Names of the objects pgshift creates for one plan. */
export interface ObjectNames {
  /** The plan's name, as the old-code gate records it. */
  readonly plan: string;
  /** The old-code gate's current generation: the sync functions' mark sets a session setting named after it (old-code-mark.ts). */
  readonly oldCodeGeneration: number;
  readonly forward: (index: number) => string;
  readonly reverse: (index: number) => string;
  /** The sync function (of UPDATE events only, when the plan has one trigger per event). */
  readonly syncFunction: string;
  /** The sync function of INSERT events, when the plan has one trigger per event. */
  readonly insertFunction: string;
  /** The sync trigger (of UPDATE events only, when the plan has one trigger per event). */
  readonly trigger: string;
  /** The sync trigger of INSERT events, when the plan has one trigger per event. */
  readonly insertTrigger: string;
  readonly notNullCheck: (column: string) => string;
  readonly uniqueIndex: (column: string) => string;
}

/** Deterministic, length-safe names for a plan's generated objects; `generation` is the old-code gate's (0 before it watches). */
export function objectNames(plan: string, facts: PlanFacts, generation = 0): ObjectNames {
  const schema = facts.stateSchema;
  const fn = (name: string): string => qualified({ schema, name });
  return {
    plan,
    oldCodeGeneration: generation,
    forward: (i) => fn(objectName(plan, `fwd${i}`)),
    reverse: (i) => fn(objectName(plan, `rev${i}`)),
    syncFunction: fn(objectName(plan, 'sync')),
    insertFunction: fn(objectName(plan, 'sync_insert')),
    trigger: ident(objectName('pgshift', plan)),
    insertTrigger: ident(objectName('pgshift', plan, 'insert')),
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
 * The search_path every function pgshift creates for a plan runs under, and
 * every session statement that evaluates a plan's expressions or compares
 * its columns: nothing but PostgreSQL's own catalog (and the session's
 * temporary schema last, where no function or operator is ever looked up).
 * A schema another role may write is then never consulted, so a look-alike
 * function or operator with a better-matching signature (issue 19:
 * `public.split_part(varchar, …)`, `public.= (varchar, varchar)`) is never
 * picked; every name outside pg_catalog is printed schema-qualified.
 */
export const SAFE_SEARCH_PATH = 'pg_catalog, pg_temp';

/**
 * The statement that puts a step's transaction under {@link SAFE_SEARCH_PATH}:
 * transaction-local, so it holds behind a transaction pooler too and leaves
 * the session as it was.
 */
export const SAFE_PATH_IN_TRANSACTION = `SELECT pg_catalog.set_config('search_path', '${SAFE_SEARCH_PATH}', true)`;

/**
 * `CREATE OR REPLACE FUNCTION` for each forward (old → new) and reverse (new →
 * old) expression. Parameters are named after the columns.
 *
 * Plans started with bound expressions (`facts.inline.bound`) get SQL-standard
 * bodies (`RETURN …`, PostgreSQL 14+) made of the text PostgreSQL printed at
 * plan start, types included, created under {@link SAFE_SEARCH_PATH} (the
 * step's first statement must be {@link SAFE_PATH_IN_TRANSACTION}): such a
 * body is parsed at CREATE and stored with every name bound, so neither the
 * caller's search_path nor an object planted since can change it. No SET
 * clause: PostgreSQL does not inline a function that has one (its
 * `proconfig` must be empty), and the backfill's UPDATE, verify and the
 * final check rely on the call being inlined (checked with EXPLAIN VERBOSE
 * on 14 and 18: `split_part(...)` in the scan's output with a SQL-standard
 * body, `fwd(...)` with a SET clause); a SQL-standard body needs none.
 * Older plans keep a body parsed at call time, under the plan's search_path
 * that their callers set: plans in flight already made their functions so.
 */
export function expressionFunctions(change: ColumnChange, names: ObjectNames, facts: PlanFacts): string[] {
  const inline = facts.inline;
  if (inline?.bound) {
    // A column that reads other columns than the old ones (`reads`) has their types printed in `oldTypes`.
    const oldParams = (c: NewColumn): string => (c.reads ?? change.old).map((r, i) => `${ident(r.name)} ${inline.oldTypes[i]}`).join(', ');
    const newParams = change.new.map((c, i) => `${ident(c.exprName ?? c.name)} ${inline.newTypes[i]}`).join(', ');
    // PostgreSQL prints a parameter used inside a subquery qualified by the printing function's name (the label):
    // here the function has its own name, which qualifies its parameters the same way.
    const own = (text: string, fn: string): string => text.replaceAll(`${inline.label}.`, `${ident(objectName(names.plan, fn))}.`);
    return [
      ...change.new.map(
        (c, i) => `CREATE OR REPLACE FUNCTION ${names.forward(i)}(${oldParams(c)}) RETURNS ${inline.newTypes[i]} LANGUAGE sql
RETURN ${own(inline.forward[i]!, `fwd${i}`)}`,
      ),
      ...change.old.map(
        (_, i) => `CREATE OR REPLACE FUNCTION ${names.reverse(i)}(${newParams}) RETURNS ${inline.oldTypes[i]} LANGUAGE sql
RETURN ${own(inline.reverse[i]!, `rev${i}`)}`,
      ),
    ];
  }
  const oldParams = (c: NewColumn): string => (c.reads ?? change.old).map((r) => `${ident(r.name)} ${r.type}`).join(', ');
  const newParams = change.new.map((c) => `${ident(c.exprName ?? c.name)} ${c.type}`).join(', ');
  return [
    ...change.new.map(
      (c, i) =>
        `CREATE OR REPLACE FUNCTION ${names.forward(i)}(${oldParams(c)}) RETURNS ${c.type} LANGUAGE sql\n` +
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
  return change.new.map(
    (c, i) =>
      `${names.forward(i)}(${list(
        (c.reads ?? change.old).map((r) => r.name),
        source,
      )})`,
  );
}

/** Calls of every reverse function on `source`. */
export function reverseCalls(change: ColumnChange, names: ObjectNames, source = ''): string[] {
  return change.old.map(
    (_, i) =>
      `${names.reverse(i)}(${list(
        change.new.map((c) => c.name),
        source,
      )})`,
  );
}

/** The events one sync trigger fires on. */
export type SyncEvents = 'INSERT OR UPDATE' | 'INSERT' | 'UPDATE';

/** One sync trigger of a plan: its name, its function, the events it fires on. */
export interface SyncTrigger {
  readonly trigger: string;
  readonly fn: string;
  readonly events: SyncEvents;
}

/**
 * The plan's sync triggers: one per event, INSERT and UPDATE, for plans
 * started by a pgshift that makes them (`inline.perEvent`), so that neither
 * function spends an expression on `TG_OP` (about a microsecond of every
 * write: docs/trigger.md); one for both events in plans started before.
 */
export function syncTriggers(names: ObjectNames, facts: PlanFacts): SyncTrigger[] {
  return facts.inline?.perEvent
    ? [
        { trigger: names.insertTrigger, fn: names.insertFunction, events: 'INSERT' },
        { trigger: names.trigger, fn: names.syncFunction, events: 'UPDATE' },
      ]
    : [{ trigger: names.trigger, fn: names.syncFunction, events: 'INSERT OR UPDATE' }];
}

/** `CREATE OR REPLACE FUNCTION` of each of the plan's sync functions, in `mode` (see {@link syncFunction}). */
export function syncFunctions(change: ColumnChange, names: ObjectNames, facts: PlanFacts, mode: SyncMode): string[] {
  return syncTriggers(names, facts).map((t) => syncFunction(change, names, facts, mode, t));
}

/**
 * A sync trigger's function. On INSERT the side that was given fills the
 * other (the old side wins when both are, since old code never writes the
 * new columns, unless the old side already equals what the reverse
 * expressions give from the new side: that is a row an UPDATE moved to
 * another partition, which the UPDATE branch synced on its way out, and
 * recomputing the new side from a lossy reverse would change what new code
 * wrote); on UPDATE the side that changed fills the other (the new side wins
 * when both changed: that writer knows both).
 *
 * plpgsql prepares each expression it evaluates once per transaction, and an
 * application's writes are mostly one row per transaction, so each test or
 * assignment on a write's path costs about a microsecond of that write
 * (docs/trigger.md has the measurements). So there is one function per event
 * (no `TG_OP` to ask), old code's writes, the ones every row of a live
 * application makes from `dual-write` to `switch-read`, are decided by the
 * first test, and the gate's mark shares its test with the condition it
 * depends on.
 *
 * With `facts.inline` (plans started on PostgreSQL 14+ by a version that
 * inlines) the expressions are written into the body as PostgreSQL printed
 * them at plan start, every name outside pg_catalog qualified: over the NEW
 * record's fields (`new.<column>`) when that form was captured, else over
 * block variables named after the columns (`#variable_conflict use_column`
 * binds them as a SQL function binds its parameters). The body then calls no
 * function and looks up no schema of pgshift's, so every role that may write
 * the table can run it (it is SECURITY INVOKER: the writer's own rights,
 * nothing more). It runs under `SET search_path = pg_catalog, pg_temp`
 * ({@link SAFE_SEARCH_PATH}): plpgsql parses its expressions when they first
 * run, so without it the generated `NEW.x IS DISTINCT FROM OLD.x` and every
 * pg_catalog name printed unqualified would be resolved through the
 * writer's search_path, where a better-matching look-alike (an operator
 * `public.= (varchar, varchar)`) wins. The clause was measured on
 * PostgreSQL 15 with pgbench, CPU-bound (synchronous_commit = off), against
 * the same BEFORE UPDATE trigger without it: 11.8k/13.4k/13.9k tps with,
 * 12.4k/13.6k/14.3k without, alternating rounds: within the rounds' noise.
 * The backfill's own writes are recognised in the body, by the only branch
 * they could enter (see {@link createTriggers}). Older plans keep the form
 * they started with: calls of the expression functions under the plan's
 * search_path, the backfill skipped by the trigger's WHEN clause.
 */
export function syncFunction(change: ColumnChange, names: ObjectNames, facts: PlanFacts, mode: SyncMode, target: SyncTrigger): string {
  const inline = facts.inline;
  const pad = (depth: number): string => '  '.repeat(depth);
  const anyNew = change.new.map((c) => `NEW.${ident(c.name)} IS NOT NULL`).join(' OR ');
  const allOldNull = change.old.map((c) => `NEW.${ident(c.name)} IS NULL`).join(' AND ');
  const changed = (cols: readonly { name: string }[]): string => cols.map((c) => `NEW.${ident(c.name)} IS DISTINCT FROM OLD.${ident(c.name)}`).join(' OR ');
  const forward = inline ? (inline.forwardOnNew ?? inline.forward) : forwardCalls(change, names, 'NEW.');
  const reverse = inline ? (inline.reverseOnNew ?? inline.reverse) : reverseCalls(change, names, 'NEW.');
  /**
   * `lines` (at depth+1) with the variables one side's expressions read, when they were inlined over variables;
   * expressions printed over the NEW record (`new.<column>`) need none.
   */
  const over = (side: 'old' | 'new', depth: number, lines: (depth: number) => string[]): string[] => {
    if (!inline || (side === 'old' ? inline.forwardOnNew : inline.reverseOnNew)) return lines(depth);
    const vars =
      side === 'old'
        ? change.old.map((c, i) => `${ident(c.name)} ${inline.oldTypes[i]} := NEW.${ident(c.name)};`)
        : change.new.map((c, i) => `${ident(c.exprName ?? c.name)} ${inline.newTypes[i]} := NEW.${ident(c.name)};`);
    return [`${pad(depth)}<<${inline.label}>> DECLARE ${vars.join(' ')}`, `${pad(depth)}BEGIN`, ...lines(depth + 1), `${pad(depth)}END;`];
  };
  const fillOld = (depth: number): string[] => over('new', depth, (d) => change.old.map((c, i) => `${pad(d)}NEW.${ident(c.name)} := ${reverse[i]};`));
  const fillNew = (depth: number): string[] => over('old', depth, (d) => change.new.map((c, i) => `${pad(d)}NEW.${ident(c.name)} := ${forward[i]};`));
  // A row an UPDATE moved to another partition: already synced by the UPDATE branch, kept as written.
  const keepMoved = (depth: number): string[] =>
    over('new', depth, (d) => [
      `${pad(d)}IF ROW(${change.old.map((c) => `NEW.${ident(c.name)}`).join(', ')}) IS NOT DISTINCT FROM ROW(${reverse.join(', ')}) THEN`,
      `${pad(d + 1)}RETURN NEW;`,
      `${pad(d)}END IF;`,
    ]);
  const defaults = (depth: number): string[] =>
    mode === 'two-way-defaults'
      ? change.old.flatMap((c, i) => {
          const value = inline ? inline.oldDefaults[i] : c.default;
          return value === null || value === undefined ? [] : [`${pad(depth)}IF NEW.${ident(c.name)} IS NULL THEN NEW.${ident(c.name)} := ${value}; END IF;`];
        })
      : [];
  // Inlined plans' triggers have no WHEN clause: the backfill's writes set the new side from the old and must not
  // re-derive the old side. Only a new-code update could, so only that branch asks (and the one-way body).
  const notBackfill = inline ? `current_setting(${literal(BACKFILL_SETTING)}, true) IS DISTINCT FROM 'on'` : null;
  // The old-code gate's evidence (old-code-mark.ts): where a client, not the trigger, wrote the old side.
  const mark = (depth: number, when?: string): string[] => oldCodeMark(names.plan, names.oldCodeGeneration, facts.stateSchema, pad(depth), when);
  const anyOld = change.old.map((c) => `NEW.${ident(c.name)} IS NOT NULL`).join(' OR ');
  const oldUpdate = `(${changed(change.old)}) AND NOT (${changed(change.new)})`;
  const newUpdate = notBackfill ? `(${changed(change.new)}) AND ${notBackfill}` : changed(change.new);
  /** Two-way: an insert's branches. */
  const insert = (depth: number): string[] => [
    `${pad(depth)}IF NOT (${anyNew}) THEN`,
    `${pad(depth + 1)}-- old code's insert`,
    ...mark(depth + 1, anyOld),
    ...defaults(depth + 1),
    ...fillNew(depth + 1),
    `${pad(depth)}ELSIF ${allOldNull} THEN`,
    `${pad(depth + 1)}-- new code's insert`,
    ...fillOld(depth + 1),
    `${pad(depth)}ELSE`,
    ...keepMoved(depth + 1),
    ...mark(depth + 1, anyOld),
    ...defaults(depth + 1),
    ...fillNew(depth + 1),
    `${pad(depth)}END IF;`,
  ];
  /** Two-way: an update's branches, after `first` (`IF` or `ELSIF`). */
  const update = (depth: number, first: string): string[] => [
    `${pad(depth)}${first} ${oldUpdate} THEN`,
    `${pad(depth + 1)}-- old code's update`,
    ...mark(depth + 1),
    ...fillNew(depth + 1),
    `${pad(depth)}ELSIF ${newUpdate} THEN`,
    `${pad(depth + 1)}-- new code's update`,
    ...fillOld(depth + 1),
  ];
  // One-way: old code is gone by now; a client that still writes the old side is seen before the derivation overwrites it.
  const derive = (guard: boolean): string[] => (guard && notBackfill ? [`  IF ${notBackfill} THEN`, ...fillOld(2), `  END IF;`] : fillOld(1));
  const bodies: Record<'one-way' | 'two-way', Record<SyncEvents, string[]>> = {
    'one-way': {
      'INSERT OR UPDATE': [`  IF TG_OP = 'INSERT' THEN`, ...mark(2, anyOld), `  ELSIF ${changed(change.old)} THEN`, ...mark(2), `  END IF;`, ...derive(true)],
      // The backfill never inserts.
      INSERT: [...mark(1, anyOld), ...derive(false)],
      UPDATE: [...mark(1, changed(change.old)), ...derive(true)],
    },
    'two-way': {
      'INSERT OR UPDATE': [`  IF TG_OP = 'INSERT' THEN`, ...insert(2), ...update(1, 'ELSIF'), `  END IF;`],
      INSERT: insert(1),
      UPDATE: [...update(1, 'IF'), `  END IF;`],
    },
  };
  const body = [...bodies[mode === 'one-way' ? 'one-way' : 'two-way'][target.events], `  RETURN NEW;`];
  return (
    `CREATE OR REPLACE FUNCTION ${target.fn}() RETURNS trigger LANGUAGE plpgsql\n` +
    `SET search_path = ${inline ? SAFE_SEARCH_PATH : facts.searchPath}\n` +
    `AS ${BODY_TAG}\n${inline ? '#variable_conflict use_column\n' : ''}-- pgshift sync, mode ${mode}\nBEGIN\n${body.join('\n')}\nEND\n${BODY_TAG}`
  );
}

/** The GUC the backfill sets in its transactions; the trigger stands aside for them. */
export const BACKFILL_SETTING = 'pgshift.backfill';

/**
 * The sync triggers. The backfill's own writes set the new side from the
 * old explicitly and must never re-derive the old side, so the trigger
 * stands aside in its transactions (`pgshift.backfill` on). Inlined plans
 * test that in the function's body, in the new-code update branch, the only
 * one a backfill write can enter; older plans in a WHEN clause. A WHEN clause
 * is read and prepared by the executor for every statement that writes the
 * table, which cost a one-row write more than the rest of the trigger's body
 * (docs/trigger.md); in exchange each backfilled row now calls the function.
 */
export function createTriggers(names: ObjectNames, facts: PlanFacts): string[] {
  const when = facts.inline ? '' : ` WHEN (current_setting(${literal(BACKFILL_SETTING)}, true) IS DISTINCT FROM 'on')`;
  return syncTriggers(names, facts).map(
    (t) => `CREATE OR REPLACE TRIGGER ${t.trigger} BEFORE ${t.events} ON ${qualified(facts.table)}\n` + `FOR EACH ROW${when}\n` + `EXECUTE FUNCTION ${t.fn}()`,
  );
}

/** `DROP TRIGGER IF EXISTS` of each of the plan's sync triggers on `table` (qualified). */
export function dropTriggers(names: ObjectNames, facts: PlanFacts, table: string): string[] {
  return syncTriggers(names, facts).map((t) => `DROP TRIGGER IF EXISTS ${t.trigger} ON ${table}`);
}
