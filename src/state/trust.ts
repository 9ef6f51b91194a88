import type { Client } from '../db/client.js';
import { functionSignatureSql, ident } from '../db/ident.js';
import { UntrustedStateError, type UntrustedStateObject } from '../errors.js';
import { STATE_FUNCTIONS, STATE_TABLES } from './migrations.js';

/**
 * Can the runner trust the state schema? Every object pgshift reads, writes
 * or calls there runs code with the runner's rights (a trigger or rule on a
 * state table fires for the runner's INSERT; a view's functions run as the
 * reader; a state function replaced by its owner runs as whoever calls it),
 * so each must be the runner's own (`current_user`, exactly: a superuser is
 * a member of every role, and before PostgreSQL 16 a role could grant
 * membership in itself to anyone, so membership proves nothing):
 *
 * - the schema's owner may drop and replace any table in it, at any moment
 *   of a run: it is the runner, a superuser, or `pg_database_owner` in a
 *   database owned by the runner or a superuser (`public` since PostgreSQL
 *   15); another owner is refused;
 * - every relation named like a state table is a plain table the runner owns;
 * - every function named like a state function is the runner's;
 * - no state table has a trigger or rule (pgshift makes none);
 * - with `creating` (pgshift is about to create missing state tables): the
 *   schema is the runner's and no other role may create in it, so nobody can
 *   put a look-alike there between this check and the CREATE … IF NOT
 *   EXISTS that would keep it. A schema such as `public` is thus used only
 *   when it already holds every state table, all the runner's.
 *
 * Reads the catalog only. Empty when the schema does not exist (pgshift
 * creates it, as the runner).
 */
export async function untrustedStateObjects(client: Client, schema: string, creating: boolean): Promise<UntrustedStateObject[]> {
  const s = ident(schema);
  const runner = `(SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER)`;
  const trusted = (role: string): string => `(${role} = ${runner} OR (SELECT t.rolsuper FROM pg_catalog.pg_roles t WHERE t.oid = ${role}))`;
  const { rows: found } = await client.query<{ oid: number; owner: string; owned: boolean; trusted: boolean; creators: string[] }>(
    `SELECT n.oid::int8::float8 AS oid, n.nspowner::regrole::text AS owner, n.nspowner = ${runner} AS owned,
            ${trusted('n.nspowner')} OR (n.nspowner::regrole::text = 'pg_database_owner'
              AND (SELECT ${trusted('d.datdba')} FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())) AS trusted,
            ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                    FROM pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
                   WHERE a.privilege_type = 'CREATE' AND a.grantee <> ${runner} ORDER BY 1) AS creators
       FROM pg_catalog.pg_namespace n WHERE n.nspname = $1`,
    [schema],
  );
  const ns = found[0];
  if (!ns) return [];
  const out: UntrustedStateObject[] = [];
  if (!ns.trusted) {
    out.push({ object: `schema ${s}`, owner: ns.owner, problem: 'is not owned by the runner (its owner may drop and replace the state tables in it)' });
  }
  const relations = await client.query<{ name: string; kind: string; owner: string; owned: boolean }>(
    `SELECT c.relname::text AS name, c.relkind::text AS kind, c.relowner::regrole::text AS owner, c.relowner = ${runner} AS owned
       FROM pg_catalog.pg_class c WHERE c.relnamespace = $1::oid AND c.relname = ANY ($2::text[]) ORDER BY 1`,
    [ns.oid, STATE_TABLES],
  );
  for (const r of relations.rows) {
    const object = `${r.kind === 'r' ? 'table' : 'relation'} ${s}.${ident(r.name)}`;
    if (!r.owned) out.push({ object, owner: r.owner, problem: 'is not owned by the runner' });
    else if (r.kind !== 'r') out.push({ object, owner: r.owner, problem: `is not a plain table (relkind ${r.kind})` });
  }
  const functions = await client.query<{ fn: string; owner: string }>(
    `SELECT ${functionSignatureSql('p.oid')} AS fn, p.proowner::regrole::text AS owner FROM pg_catalog.pg_proc p
      WHERE p.pronamespace = $1::oid AND p.proname = ANY ($2::text[]) AND p.proowner <> ${runner} ORDER BY 1`,
    [ns.oid, STATE_FUNCTIONS],
  );
  for (const f of functions.rows) out.push({ object: `function ${f.fn}`, owner: f.owner, problem: 'is not owned by the runner' });
  // Internal triggers (those of foreign keys) are the state tables' own; any other was put there by someone else.
  const hooks = await client.query<{ kind: string; name: string; on: string; fn: string | null; owner: string }>(
    `SELECT 'trigger' AS kind, t.tgname::text AS name, c.relname::text AS on, ${functionSignatureSql('t.tgfoid')} AS fn, f.proowner::regrole::text AS owner
       FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_proc f ON f.oid = t.tgfoid
      WHERE c.relnamespace = $1::oid AND c.relname = ANY ($2::text[]) AND NOT t.tgisinternal
     UNION ALL
     SELECT 'rule', w.rulename::text, c.relname::text, NULL, c.relowner::regrole::text
       FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_class c ON c.oid = w.ev_class
      WHERE c.relnamespace = $1::oid AND c.relname = ANY ($2::text[]) AND c.relkind = 'r'
     ORDER BY 1, 3, 2`,
    [ns.oid, STATE_TABLES],
  );
  for (const h of hooks.rows) {
    const object = `${h.kind} ${ident(h.name)} on ${s}.${ident(h.on)}${h.fn ? ` (function ${h.fn})` : ''}`;
    out.push({ object, owner: h.owner, problem: 'was not made by pgshift' });
  }
  if (creating && ns.trusted && relations.rows.length < STATE_TABLES.length && (!ns.owned || ns.creators.length)) {
    out.push({
      object: `schema ${s}`,
      owner: ns.owner,
      problem:
        (ns.owned ? '' : 'is not owned by the runner') +
        (ns.creators.length ? `${ns.owned ? '' : ', and '}lets ${ns.creators.join(', ')} create objects in it` : '') +
        ', so pgshift will not create its state tables there (another role could put a look-alike first)',
    });
  }
  return out;
}

/**
 * Refuse (exit 2, naming each object and its owner) a state schema the
 * runner cannot trust; see {@link untrustedStateObjects}.
 */
export async function assertTrustedState(client: Client, schema: string, creating: boolean): Promise<void> {
  const objects = await untrustedStateObjects(client, schema, creating);
  if (!objects.length) return;
  const { rows } = await client.query<{ role: string }>(`SELECT CURRENT_USER::text AS role`);
  throw new UntrustedStateError(schema, rows[0]!.role, objects);
}
