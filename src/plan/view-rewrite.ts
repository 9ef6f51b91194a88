import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DependentView, ViewIndex } from '../changes/dependent-views.js';
import { viewOptionsClause } from '../changes/dependent-views.js';
import type { ColumnChange, PlanFacts } from '../changes/model.js';
import { resolveChange } from '../changes/kinds/registry.js';
import { backendPid, inSavepoint, isLockConflict, sqlState, type Client } from '../db/client.js';
import { conflictingSessions } from '../db/locks.js';
import { display, ident, qualified } from '../db/ident.js';
import { LOCK_WAIT_POLL_MS, RETRY_FACTOR, RETRY_MAX_WAIT_MS, RETRY_MIN_WAIT_MS } from '../defaults.js';
import { LockTimeoutError, PgshiftError, PlanError } from '../errors.js';
import { YOUNG_TRANSACTION_MS } from '../defaults.js';
import { conflictingLockNames } from '../changes/steps.js';
import type { Guards, Plan } from './types.js';

/** Dependent views as read from the catalog, and what makes any of them impossible to move. */
export interface DependentViews {
  readonly views: readonly DependentView[];
  readonly problems: readonly string[];
}

/** `pg_get_viewdef` ends its text with `;`; a definition inside a statement must not. */
const bare = (def: string): string => def.replace(/;\s*$/, '');

const EMPTY_PATH = `SELECT pg_catalog.set_config('search_path', '', true)`;

/**
 * Read the views and materialized views (by oid) that use a column the plan
 * replaces: their definitions deparsed with an empty search_path, their
 * options, and for a materialized view what a rebuilt copy must carry. Reads
 * the catalog only (no lock a query could wait behind), so `lint` runs it.
 * Must run inside a transaction the caller rolls back.
 */
export async function readDependentViews(client: Client, oids: readonly number[]): Promise<DependentViews> {
  return inSavepoint(
    client,
    async () => {
      await client.query(EMPTY_PATH);
      return readViews(client, oids);
    },
    { undo: true },
  );
}

async function readViews(client: Client, oids: readonly number[]): Promise<DependentViews> {
  const { rows } = await client.query<{
    oid: number;
    schema: string;
    name: string;
    kind: string;
    def: string;
    options: string[];
    populated: boolean;
    owner: string | null;
    owned: boolean;
    comment: string | null;
    me: string;
  }>(
    `SELECT c.oid::int8::float8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
            pg_get_viewdef(c.oid, true) AS def, coalesce(c.reloptions, '{}') AS options, c.relispopulated AS populated,
            CASE WHEN c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) THEN NULL ELSE pg_get_userbyid(c.relowner) END AS owner,
            pg_has_role(c.relowner, 'MEMBER') AS owned, obj_description(c.oid, 'pg_class') AS comment, current_user AS me
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = ANY ($1::oid[]) ORDER BY n.nspname, c.relname`,
    [oids],
  );
  const views: DependentView[] = [];
  const problems: string[] = [];
  for (const r of rows) {
    const what = `${r.kind === 'm' ? 'materialized view' : 'view'} ${r.schema}.${r.name}`;
    if (!r.owned) {
      problems.push(
        `${what} reads the column and must be redefined over the new one, which only its owner can do: ` +
          `run pgshift as role ${ident(r.owner ?? '')} or a member of it (GRANT ${ident(r.owner ?? '')} TO ${ident(r.me)})`,
      );
      continue;
    }
    const base = { view: { schema: r.schema, name: r.name }, original: bare(r.def), rewritten: null, options: r.options };
    if (r.kind === 'v') {
      views.push({ ...base, kind: 'view' });
      continue;
    }
    // Views reading the materialized view follow it to its copy; anything else reading it cannot.
    const users = await client.query<{
      what: string;
      view: string | null;
      schema: string;
      name: string;
      plain: boolean;
      owned: boolean;
      options: string[];
      def: string | null;
    }>(
      `SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid) AS what, u.oid::text AS view, un.nspname AS schema, u.relname AS name,
              (rw.rulename = '_RETURN' AND u.relkind = 'v') AS plain, pg_has_role(u.relowner, 'MEMBER') AS owned,
              coalesce(u.reloptions, '{}') AS options, CASE WHEN u.relkind = 'v' THEN pg_get_viewdef(u.oid, true) END AS def
         FROM pg_depend d
         LEFT JOIN pg_rewrite rw ON d.classid = 'pg_rewrite'::regclass AND rw.oid = d.objid
         LEFT JOIN pg_class u ON u.oid = rw.ev_class LEFT JOIN pg_namespace un ON un.oid = u.relnamespace
        WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::oid AND d.deptype = 'n' AND rw.ev_class IS DISTINCT FROM $1::oid
        ORDER BY 1`,
      [r.oid],
    );
    const readers: { view: { schema: string; name: string }; options: string[]; definition: string }[] = [];
    for (const u of users.rows) {
      const who = u.view === null ? u.what : `${u.plain ? 'view' : 'materialized view'} ${u.schema}.${u.name}`;
      if (u.plain && u.owned && !oids.includes(Number(u.view))) {
        readers.push({ view: { schema: u.schema, name: u.name }, options: u.options, definition: bare(u.def!) });
        continue;
      }
      problems.push(
        `${what} reads the column and is used by ${who}: pgshift moves a materialized view by building a copy and swapping names, ` +
          (u.plain && !u.owned
            ? `and moves the views reading it to the copy, which only their owner can do: run pgshift as the owner of ${who}`
            : u.plain
              ? `and cannot also redefine ${who}, which reads the table's column itself. Without downtime: make ${who} read the column only through ${what} (CREATE OR REPLACE VIEW), then run the plan`
              : `and cannot carry ${who} to the copy. Without downtime: make it read a plain view with the same query instead (CREATE OR REPLACE VIEW), which pgshift redefines in place`),
      );
    }
    if (readers.length < users.rows.length) continue;
    const indexes = await client.query<ViewIndex & { definition: string | null }>(
      `SELECT i.relname AS name, x.indisunique AS unique,
              CASE WHEN starts_with(d.def, d.prefix) THEN substr(d.def, length(d.prefix) + 1) END AS definition
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid,
              LATERAL (SELECT pg_get_indexdef(x.indexrelid) AS def,
                              pg_catalog.format('CREATE %sINDEX %I ON %I.%I ', CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END, i.relname, $2::text, $3::text) AS prefix) d
        WHERE x.indrelid = $1::oid ORDER BY i.relname`,
      [r.oid, r.schema, r.name],
    );
    const unreadable = indexes.rows.filter((i) => i.definition === null);
    for (const i of unreadable) problems.push(`index ${i.name} on ${what}: its definition could not be read for the rebuilt copy`);
    const grants = await client.query<{ privilege: string; grantee: string | null; grantable: boolean }>(
      `SELECT a.privilege_type AS privilege, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.is_grantable AS grantable
         FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1::oid AND a.grantee <> c.relowner ORDER BY 2, 1`,
      [r.oid],
    );
    views.push({
      ...base,
      kind: 'materialized',
      matview: {
        populated: r.populated,
        indexes: indexes.rows.filter((i) => i.definition !== null).map((i) => ({ name: i.name, unique: i.unique, definition: i.definition! })),
        grants: grants.rows,
        owner: r.owner,
        comment: r.comment,
        readers,
      },
    });
  }
  return { views, problems };
}

/**
 * Compute each dependent view's definition over the new columns, by
 * PostgreSQL itself. In a transaction that is always rolled back, every old
 * column is renamed to a random token and the new columns are added; the
 * views are then deparsed, so each use of an old column shows as the token,
 * which occurs nowhere else. Only the token is replaced: by the new column
 * (rename), or by a scalar subquery that evaluates the plan's `reverse`
 * expression over the new columns (split, merge, retype), so the old value
 * is read exactly as the trigger derives it. The result is handed back to
 * PostgreSQL as a temporary view, whose output columns must match the
 * view's (names, types, typmods, collations), which must not read an old
 * column any more (`pg_depend`), and which is deparsed once more: that text
 * is what stop-write runs.
 *
 * The renames take ACCESS EXCLUSIVE on the table (not on the views) for the
 * few milliseconds the transaction lasts (catalog-only), and, like any step,
 * wait for it outside the lock queue (until no session is in the way, up to
 * `max_wait`), then attempt under the plan's lock_timeout; it runs once, when
 * the plan starts, and only when a view reads an old column. `lint` never runs it.
 */
export async function rewriteDependentViews(client: Client, plan: Plan, facts: PlanFacts, guards: Guards): Promise<DependentViews> {
  const views = facts.views ?? [];
  if (!views.length) return { views, problems: [] };
  const change = resolveChange(plan.change, facts);
  const deadline = Date.now() + guards.maxWaitMs;
  const table = {
    oid: (await client.query<{ oid: number }>(`SELECT to_regclass($1)::oid::int8::float8 AS oid`, [qualified(facts.table)])).rows[0]!.oid,
    conflicting: conflictingLockNames('ACCESS EXCLUSIVE'),
  };
  const pid = backendPid(client);
  for (let attempt = 1; ; attempt++) {
    let failure: unknown;
    // Outside the queue first: the client holds nothing between attempts, so it may look itself.
    for (;;) {
      const blockers = await conflictingSessions(client, [table], pid, Math.min(YOUNG_TRANSACTION_MS, guards.lockTimeoutMs / 2));
      if (!blockers.length) break;
      if (Date.now() >= deadline)
        throw new LockTimeoutError(display(facts.table), "compute the dependent views' definitions over the new columns", attempt - 1, blockers, {
          waitedMs: guards.maxWaitMs,
        });
      await sleep(LOCK_WAIT_POLL_MS);
    }
    await client.query('BEGIN');
    try {
      await client.query(
        `SET LOCAL lock_timeout = ${Math.round(guards.lockTimeoutMs)}; SET LOCAL statement_timeout = ${Math.round(guards.statementTimeoutMs)}`,
      );
      return await rewriteInTransaction(client, facts, change, views);
    } catch (error) {
      failure = error;
    } finally {
      await client.query('ROLLBACK');
    }
    // The database refused the probe itself (e.g. an inherited column cannot be renamed): nothing changed.
    if (!isLockConflict(failure) && sqlState(failure) && !(failure instanceof PgshiftError))
      throw new PlanError([
        { file: plan.file, path: plan.change.kind, message: `the views reading the column cannot be redefined by pgshift: ${(failure as Error).message}` },
      ]);
    if (!isLockConflict(failure)) throw failure;
    if (Date.now() >= deadline)
      throw new LockTimeoutError(display(facts.table), "compute the dependent views' definitions over the new columns", attempt, [], {
        cause: failure,
        waitedMs: guards.maxWaitMs,
      });
    await sleep(Math.min(RETRY_MAX_WAIT_MS, RETRY_MIN_WAIT_MS * RETRY_FACTOR ** (attempt - 1)) * (0.5 + Math.random() / 2));
  }
}

async function rewriteInTransaction(client: Client, facts: PlanFacts, change: ColumnChange, views: readonly DependentView[]): Promise<DependentViews> {
  const t = qualified(facts.table);
  const tokens = change.old.map((old) => ({ old, token: `pgshift_${randomBytes(12).toString('hex')}` }));
  const userPath = `SELECT pg_catalog.set_config('search_path', $1, true)`;
  await client.query(userPath, [facts.searchPath]);
  for (const { old, token } of tokens) await client.query(`ALTER TABLE ${t} RENAME COLUMN ${ident(old.name)} TO ${ident(token)}`);
  await client.query(
    `ALTER TABLE ${t} ${change.new.map((c) => `ADD COLUMN ${ident(c.name)} ${c.type}${c.collation ? ` COLLATE ${c.collation}` : ''}`).join(', ')}`,
  );
  await client.query(EMPTY_PATH);
  const out: DependentView[] = [];
  const problems: string[] = [];
  for (const [i, v] of views.entries()) {
    const what = `${v.kind === 'view' ? 'view' : 'materialized view'} ${display(v.view)}`;
    const { rows } = await client.query<{ def: string }>(`SELECT pg_get_viewdef($1::regclass, true) AS def`, [qualified(v.view)]);
    const tokenized = bare(rows[0]!.def);
    // A temporary view stands in for the real one: the views themselves are not locked here, so a
    // query reading a view (view first, then the table) cannot deadlock with this transaction.
    const target = { schema: 'pg_temp', name: `pgshift_view_probe_${i}` };
    try {
      const rewritten = await inSavepoint(client, async () => {
        const text = substitute(tokenized, tokens, change);
        await client.query(userPath, [facts.searchPath]);
        // A materialized view's options are storage parameters, which a view does not take.
        await client.query(`CREATE TEMP VIEW ${ident(target.name)}${v.kind === 'view' ? viewOptionsClause(v.options) : ''} AS ${text}`);
        const differs = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM (
           (SELECT attnum, attname, atttypid, atttypmod, attcollation FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
            EXCEPT SELECT attnum, attname, atttypid, atttypmod, attcollation FROM pg_attribute WHERE attrelid = $2::regclass AND attnum > 0 AND NOT attisdropped)
           UNION ALL
           (SELECT attnum, attname, atttypid, atttypmod, attcollation FROM pg_attribute WHERE attrelid = $2::regclass AND attnum > 0 AND NOT attisdropped
            EXCEPT SELECT attnum, attname, atttypid, atttypmod, attcollation FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped)) d`,
          [qualified(v.view), qualified(target)],
        );
        if (differs.rows[0]!.n) throw new Error('its columns would change name, type or collation');
        await client.query(EMPTY_PATH);
        const again = await client.query<{ def: string }>(`SELECT pg_get_viewdef($1::regclass, true) AS def`, [qualified(target)]);
        const rewritten = bare(again.rows[0]!.def);
        // The catalog, not the text, says whether the old columns are still read: PostgreSQL may keep one
        // under an alias list (JOIN … USING needs the name), where no token shows.
        const still = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
          WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class = $1::regclass AND d.refclassid = 'pg_class'::regclass
            AND d.refobjid = $2::regclass AND d.refobjsubid IN (SELECT attnum FROM pg_attribute WHERE attrelid = $2::regclass AND attname = ANY ($3::text[]))`,
          [qualified(target), t, tokens.map((x) => x.token)],
        );
        if (still.rows[0]!.n || tokens.some(({ token }) => rewritten.includes(token)))
          throw new Error('it would still read the old column where it cannot be replaced (for example in JOIN … USING)');
        return rewritten;
      });
      out.push({ ...v, rewritten });
    } catch (error) {
      await client.query(EMPTY_PATH);
      if (isLockConflict(error)) throw error;
      problems.push(
        `${what} reads ${change.old.map((o) => `"${o.name}"`).join(', ')} and cannot be redefined over the new column(s) with the same output columns: ` +
          `${(error as Error).message}. Without downtime: change it (CREATE OR REPLACE VIEW, same columns) so the column is only read in ` +
          `expressions (e.g. JOIN … ON instead of JOIN … USING), or create a second view over the new columns and move its readers there before contract`,
      );
    }
  }
  return { views: out, problems };
}

/**
 * Replace each token, with the qualifier PostgreSQL printed before it (if
 * any), by what reads the old value from the new columns. The token is a
 * random name that exists nowhere else in the text, so nothing else of the
 * user's definition is touched.
 */
export function substitute(text: string, tokens: readonly { old: ColumnChange['old'][number]; token: string }[], change: ColumnChange): string {
  const qualifier = String.raw`((?:(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)\.)*)`;
  let out = text;
  for (const { old, token } of tokens) {
    out = out.replace(new RegExp(`${qualifier}${token}(?![A-Za-z0-9_$])`, 'g'), (_m, prefix: string) => {
      if (change.new.length === 1 && old.reverse === ident(change.new[0]!.name)) return prefix + ident(change.new[0]!.name);
      const columns = change.new.map((c) => prefix + ident(c.name)).join(', ');
      const names = change.new.map((c) => ident(c.exprName ?? c.name)).join(', ');
      return `(SELECT (${old.reverse})::${old.type} FROM (SELECT ${columns}) AS pgshift_new(${names}))`;
    });
  }
  return out;
}
