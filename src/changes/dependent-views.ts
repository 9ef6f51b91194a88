import { ident, literal, objectName, qualified, type QualifiedName } from '../db/ident.js';
import { ddl, type SqlStep } from './steps.js';

/** An index of a materialized view, rebuilt on its replacement. */
export interface ViewIndex {
  readonly name: string;
  readonly unique: boolean;
  /** Everything after `ON <matview> `, as `pg_get_indexdef` prints it: `USING btree (id)`. */
  readonly definition: string;
}

/**
 * A view or materialized view that reads a column the plan replaces, with
 * its definition as it is and as it becomes over the new columns. Both texts
 * are PostgreSQL's own `pg_get_viewdef` output, deparsed with an empty
 * search_path (every name that needs it schema-qualified, as pg_dump does),
 * captured when the plan starts and kept in its facts so every phase and
 * rollback runs the same statements.
 */
export interface DependentView {
  readonly view: QualifiedName;
  readonly kind: 'view' | 'materialized';
  /** `pg_get_viewdef(view, true)` before the plan, without the trailing `;`. */
  readonly original: string;
  /** The same over the new columns; null until the plan starts (lint and `show` of a plan not started). */
  readonly rewritten: string | null;
  /** `reloptions` (security_barrier, check_option, security_invoker, …), given again on each redefinition. */
  readonly options: readonly string[];
  /** Materialized views only: what the rebuilt copy must carry. */
  readonly matview?:
    | {
        readonly populated: boolean;
        readonly indexes: readonly ViewIndex[];
        /** Privileges granted on it to roles other than its owner (grantee null = PUBLIC). */
        readonly grants: readonly { readonly privilege: string; readonly grantee: string | null; readonly grantable: boolean }[];
        /** The owner when it is not the runner that started the plan; null otherwise. */
        readonly owner: string | null;
        readonly comment: string | null;
        /**
         * Plain views that read the materialized view (by oid): after each swap
         * their original definition is given again, so PostgreSQL binds its name
         * to the relation now holding it. Their columns do not change.
         */
        readonly readers?: readonly { readonly view: QualifiedName; readonly options: readonly string[]; readonly definition: string }[] | undefined;
      }
    | undefined;
}

/** Every redefinition runs with an empty search_path, the one the definitions were deparsed under. */
const EMPTY_SEARCH_PATH = `SET LOCAL search_path = ''`;

/** The names a materialized view's rebuilt copy and its parked original go by until contract. */
export function matviewNames(v: DependentView): { built: QualifiedName; parked: QualifiedName; index: (name: string, side: 'built' | 'parked') => string } {
  return {
    built: { schema: v.view.schema, name: objectName(v.view.name, 'pgshift_new') },
    parked: { schema: v.view.schema, name: objectName(v.view.name, 'pgshift_old') },
    index: (name, side) => objectName(name, side === 'built' ? 'pgshift_new' : 'pgshift_old'),
  };
}

/** ` WITH (option = 'value', …)` for a view's `reloptions`, or nothing. */
export function viewOptionsClause(options: readonly string[]): string {
  return options.length ? ` WITH (${options.map(reloptionText).join(', ')})` : '';
}

/** `check_option=local` → `check_option = 'local'`. */
function reloptionText(option: string): string {
  const at = option.indexOf('=');
  const key = option.slice(0, at);
  return `${/^[a-z_][a-z0-9_]*$/.test(key) ? key : ident(key)} = ${literal(option.slice(at + 1))}`;
}

/**
 * Going forward, refuse to replace a view someone redefined since the plan
 * started: its definition must be the original or ours (a retried step),
 * else the replacement would undo their change silently.
 */
function unchangedGuard(v: DependentView): string {
  const defs = [v.original, v.rewritten ?? v.original].map((d) => literal(d + ';'));
  const body =
    `BEGIN IF pg_catalog.pg_get_viewdef(${literal(qualified(v.view))}::pg_catalog.regclass, true) NOT IN (${defs.join(', ')}) THEN ` +
    `RAISE EXCEPTION ${literal(`view ${v.view.schema}.${v.view.name} was redefined after the plan started; pgshift will not replace it`)} ` +
    `USING HINT = ${literal('put the definition back as it was (plan show prints it), or roll the plan back and start it again')}; END IF; END`;
  return `DO ${literal(body)}`;
}

function replaceView(v: DependentView, definition: string): string {
  return `CREATE OR REPLACE VIEW ${qualified(v.view)}${viewOptionsClause(v.options)} AS ${definition}`;
}

/**
 * Give a view its original definition back, as one statement that looks
 * first: only a view at pgshift's definition is restored. Anything else was
 * not made by pgshift (already restored, or someone's change since), so
 * there is nothing of its own to undo, and a rollback is never stuck on it.
 */
function restoreDefinition(v: DependentView): string {
  const body =
    `BEGIN IF pg_catalog.pg_get_viewdef(${literal(qualified(v.view))}::pg_catalog.regclass, true) = ${literal((v.rewritten ?? v.original) + ';')} ` +
    `THEN EXECUTE ${literal(replaceView(v, v.original))}; END IF; END`;
  return `DO ${literal(body)}`;
}

const exists = (q: QualifiedName): string => `SELECT to_regclass(${literal(qualified(q))}) IS NOT NULL AS done`;
const missing = (q: QualifiedName): string => `SELECT to_regclass(${literal(qualified(q))}) IS NULL AS done`;

/**
 * stop-write, apply: every dependent view reads the new columns. A view is
 * replaced in place (`CREATE OR REPLACE VIEW`: ACCESS EXCLUSIVE on the view
 * only, a catalog update held for an instant; same output columns and types,
 * so grants, comments and views over it stay as they are). A materialized
 * view is built anew beside the original, then swapped in by renames.
 */
export function redefineViewsSteps(views: readonly DependentView[] | undefined): SqlStep[] {
  return (views ?? []).flatMap((v) => {
    if (v.rewritten === null)
      return [ddl(`redefine ${describe(v)} over the new columns (the definition is computed when the plan starts)`, 'ACCESS EXCLUSIVE', [])];
    if (v.kind === 'view')
      return [
        ddl(`redefine ${describe(v)} over the new columns (catalog-only)`, 'ACCESS EXCLUSIVE', [
          EMPTY_SEARCH_PATH,
          unchangedGuard(v),
          replaceView(v, v.rewritten),
        ]),
      ];
    return buildAndSwap(v, v.rewritten);
  });
}

/** stop-write, rollback: every dependent view reads the old columns again, as it did before the plan. */
export function restoreViewsSteps(views: readonly DependentView[] | undefined): SqlStep[] {
  return (views ?? []).flatMap((v) => {
    if (v.kind === 'view')
      return [ddl(`restore the original definition of ${describe(v)} (catalog-only)`, 'ACCESS EXCLUSIVE', [EMPTY_SEARCH_PATH, restoreDefinition(v)])];
    const n = matviewNames(v);
    const indexes = v.matview?.indexes ?? [];
    return [
      ddl(
        `swap the original ${describe(v)} back in and drop the rebuilt copy (catalog-only)`,
        'ACCESS EXCLUSIVE',
        [
          // No check here: the readers must follow the original back whatever happened, or nothing could be dropped.
          ...(v.matview?.readers?.length ? [EMPTY_SEARCH_PATH, ...readersAfter(v)] : []),
          `ALTER MATERIALIZED VIEW ${qualified(v.view)} RENAME TO ${ident(n.built.name)}`,
          ...indexes.map((i) => `ALTER INDEX ${qualified({ schema: v.view.schema, name: i.name })} RENAME TO ${ident(n.index(i.name, 'built'))}`),
          `ALTER MATERIALIZED VIEW ${qualified(n.parked)} RENAME TO ${ident(v.view.name)}`,
          ...indexes.map((i) => `ALTER INDEX ${qualified({ schema: v.view.schema, name: n.index(i.name, 'parked') })} RENAME TO ${ident(i.name)}`),
          ...readersAfter(v),
        ],
        missing(n.parked),
      ),
      // Also a copy built by an interrupted stop-write and never swapped in.
      ddl(`drop the rebuilt copy of ${describe(v)}`, 'ACCESS EXCLUSIVE', [`DROP MATERIALIZED VIEW IF EXISTS ${qualified(n.built)}`]),
    ];
  });
}

/** contract, in the transaction that drops the old columns: the parked original materialized views go first. */
export function contractViewStatements(views: readonly DependentView[] | undefined): string[] {
  return (views ?? []).filter((v) => v.kind === 'materialized').map((v) => `DROP MATERIALIZED VIEW IF EXISTS ${qualified(matviewNames(v).parked)}`);
}

function describe(v: DependentView): string {
  return `${v.kind === 'view' ? 'view' : 'materialized view'} ${v.view.schema}.${v.view.name}`;
}

/**
 * A materialized view cannot be replaced in place. The copy is built in one
 * transaction that nobody else sees until it commits: the query reads the
 * table under ACCESS SHARE (reads and writes go on), so it runs without
 * statement_timeout, like a backfill; its indexes, grants, owner and comment
 * are made in the same transaction. Then one short transaction renames the
 * original and its indexes aside and the copy into their names: ACCESS
 * EXCLUSIVE on both for an instant. The original stays, parked, until
 * contract, so stop-write's rollback is a swap back.
 */
function buildAndSwap(v: DependentView, definition: string): SqlStep[] {
  const n = matviewNames(v);
  const m = v.matview!;
  const built = qualified(n.built);
  const build: SqlStep = {
    ...ddl(
      `build a copy of ${describe(v)} over the new columns, with its indexes and grants (reads the table; nobody waits for it)`,
      'ACCESS SHARE',
      [
        EMPTY_SEARCH_PATH,
        unchangedGuardMatview(v),
        // A copy left by an interrupted attempt is pgshift's own: start it again.
        `DROP MATERIALIZED VIEW IF EXISTS ${built}`,
        `CREATE MATERIALIZED VIEW ${built}${viewOptionsClause(v.options)} AS ${definition} WITH ${m.populated ? 'DATA' : 'NO DATA'}`,
        ...m.indexes.map((i) => `CREATE ${i.unique ? 'UNIQUE ' : ''}INDEX ${ident(n.index(i.name, 'built'))} ON ${built} ${i.definition}`),
        ...m.grants.map(
          (g) => `GRANT ${g.privilege} ON ${built} TO ${g.grantee === null ? 'PUBLIC' : ident(g.grantee)}${g.grantable ? ' WITH GRANT OPTION' : ''}`,
        ),
        ...(m.comment !== null ? [`COMMENT ON MATERIALIZED VIEW ${built} IS ${literal(m.comment)}`] : []),
        ...(m.owner !== null ? [`ALTER MATERIALIZED VIEW ${built} OWNER TO ${ident(m.owner)}`] : []),
      ],
      exists(n.parked),
    ),
    timeouts: 'lock-only',
  };
  const swap = ddl(
    `swap the copy in for ${describe(v)}; the original is kept aside until contract (catalog-only)`,
    'ACCESS EXCLUSIVE',
    [
      ...readersBefore(v),
      `ALTER MATERIALIZED VIEW ${qualified(v.view)} RENAME TO ${ident(n.parked.name)}`,
      ...m.indexes.map((i) => `ALTER INDEX ${qualified({ schema: v.view.schema, name: i.name })} RENAME TO ${ident(n.index(i.name, 'parked'))}`),
      `ALTER MATERIALIZED VIEW ${built} RENAME TO ${ident(v.view.name)}`,
      ...m.indexes.map((i) => `ALTER INDEX ${qualified({ schema: v.view.schema, name: n.index(i.name, 'built') })} RENAME TO ${ident(i.name)}`),
      ...readersAfter(v),
    ],
    exists(n.parked),
  );
  return [build, swap];
}

/** The materialized view must still be defined as at start before pgshift builds its replacement. */
function unchangedGuardMatview(v: DependentView): string {
  return unchangedGuard({ ...v, rewritten: v.original });
}

/**
 * Before a swap: the readers must still be defined as at start (checked while
 * their names still bind as then), and each is locked before the
 * materialized view. A query on a reader locks the reader, then the
 * materialized view; taking them in the other order deadlocks with it (seen
 * under concurrent reads). Giving the reader its own text once more takes
 * ACCESS EXCLUSIVE on the reader alone; `LOCK TABLE` on a view would also
 * lock every table it reads in that mode.
 */
function readersBefore(v: DependentView): string[] {
  const readers = v.matview?.readers ?? [];
  return readers.length
    ? [
        EMPTY_SEARCH_PATH,
        ...readers.map((r) => unchangedGuard({ view: r.view, kind: 'view', original: r.definition, rewritten: r.definition, options: r.options })),
        ...readersAfter(v),
      ]
    : [];
}

/** After a swap: each reader's own text again, now naming the relation that took the materialized view's name. */
function readersAfter(v: DependentView): string[] {
  return (v.matview?.readers ?? []).map((r) =>
    replaceView({ view: r.view, kind: 'view', original: r.definition, rewritten: r.definition, options: r.options }, r.definition),
  );
}
