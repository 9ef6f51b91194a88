import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir } from '../helpers/fixtures.js';

/**
 * Issue 19: a role that may create objects in a schema on the search path
 * (`public`, writable by everyone on PostgreSQL 14) plants look-alikes that
 * match better than pg_catalog's own: `public.split_part(varchar, text, int)`,
 * an operator `public.= (varchar, varchar)` (picked by a generated
 * `IS DISTINCT FROM` on a varchar column), and a fixed-arity
 * `public.concat_ws(text, text, text)`. Each records `current_user` in a log
 * the intruder owns, then returns what the real one would. Whoever runs
 * pgshift (a superuser, the table's owner) and whoever writes the table (an
 * application role with DML only), the look-alikes must never run as anyone
 * but their owner: planted after a plan started, the plan completes with
 * every row right; planted before, the plan is refused up front (exit 2),
 * naming the function and its owner, and nothing is changed.
 */

let db: TestDatabase;
let app: pg.Client;
const roles = { intruder: '', owner: '', app: '' };

function urlFor(role: string): string {
  const url = new URL(db.url);
  url.username = role;
  url.password = 'pw';
  return url.toString();
}

const planYaml = (name: string, table: string): string =>
  `plan: ${name}
table: ${table}
split:
  column: full_name
  into:
    - { name: first_name, type: text, using: "split_part(full_name, ' ', 1)" }
    - { name: last_name, type: text, using: "split_part(full_name, ' ', 2)" }
  reverse: "concat_ws(' ', first_name, last_name)"
backfill: { batch_size: 20, pause: 0ms }
guards: { lock_timeout: 2s, statement_timeout: 20s, retries: 3 }
`;

let planted = false;

/** The look-alikes, created by the intruder in `public` (once: each test needs them planted, whichever runs first). */
async function plant(): Promise<void> {
  if (planted) return;
  planted = true;
  await db.sql(`SET ROLE ${roles.intruder}`);
  try {
    await db.sql(`
      CREATE FUNCTION public.split_part(varchar, text, integer) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO public.intruder_log (who, what) VALUES (current_user, 'split_part');
        RETURN pg_catalog.split_part($1::text, $2, $3);
      END $$;
      CREATE FUNCTION public.intruder_eq(varchar, varchar) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO public.intruder_log (who, what) VALUES (current_user, '=');
        RETURN $1::text OPERATOR(pg_catalog.=) $2::text;
      END $$;
      CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.intruder_eq);
      CREATE FUNCTION public.concat_ws(text, text, text) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO public.intruder_log (who, what) VALUES (current_user, 'concat_ws');
        RETURN pg_catalog.concat_ws($1, $2, $3);
      END $$;
      GRANT EXECUTE ON FUNCTION public.split_part(varchar, text, integer), public.intruder_eq(varchar, varchar),
        public.concat_ws(text, text, text) TO PUBLIC`);
  } finally {
    await db.sql('RESET ROLE');
  }
}

/** Who the look-alikes ran as, besides their owner. */
async function victims(): Promise<string[]> {
  const rows = await db.sql<{ who: string; what: string }>(
    `SELECT DISTINCT who::text AS who, what FROM public.intruder_log WHERE who <> $1::pg_catalog.name ORDER BY 1, 2`,
    [roles.intruder],
  );
  return rows.map((r) => `${r.who} via ${r.what}`);
}

/** Every row's sides, read without comparing a varchar (the planted `=` must not be called by the test either). */
async function rows(table: string, old = true): Promise<{ id: string; full_name?: string | null; first_name: string | null; last_name: string | null }[]> {
  return db.sql(`SELECT id::text AS id, ${old ? 'full_name::text AS full_name, ' : ''}first_name, last_name FROM ${table} ORDER BY id`);
}

beforeAll(async () => {
  db = await freshDatabase();
  const suffix = db.name.replace(/^pgshift_/, '');
  roles.intruder = `intruder_${suffix}`;
  roles.owner = `owner_${suffix}`;
  roles.app = `app_${suffix}`;
  await db.sql(`CREATE ROLE ${roles.intruder} NOLOGIN`);
  await db.sql(`CREATE ROLE ${roles.owner} LOGIN PASSWORD 'pw'`);
  await db.sql(`CREATE ROLE ${roles.app} LOGIN PASSWORD 'pw'`);
  // PostgreSQL 15+ no longer lets everyone create in public; 14 (and every database upgraded from it) does.
  await db.sql(`GRANT CREATE ON SCHEMA public TO PUBLIC`);
  await db.sql(`GRANT CREATE ON DATABASE ${db.name} TO ${roles.owner}`);
  await db.sql(`SET ROLE ${roles.intruder}`);
  await db.sql(
    `CREATE TABLE public.intruder_log (who name NOT NULL, what text NOT NULL, at timestamptz NOT NULL DEFAULT now()); GRANT INSERT ON public.intruder_log TO PUBLIC`,
  );
  await db.sql('RESET ROLE');
  app = new pg.Client({ connectionString: urlFor(roles.app) });
  app.on('error', () => undefined);
  await app.connect();
});

afterAll(async () => {
  await app?.end().catch(() => undefined);
  for (const r of Object.values(roles)) if (r) await db.sql(`DROP OWNED BY ${r} CASCADE`).catch(() => undefined);
  await db.client.end().catch(() => undefined);
  // Roles are cluster-wide; their objects went with DROP OWNED above, the database with the file.
});

/** A table of the plan's shape, owned by `owner` (or the superuser), with rows and the application's DML grant. */
async function createTable(table: string, owner: string | null): Promise<void> {
  await db.sql(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, full_name varchar(100))`);
  await db.sql(`INSERT INTO ${table} (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, 60) g`);
  await db.sql(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO ${roles.app}; GRANT USAGE ON SEQUENCE ${table}_id_seq TO ${roles.app}`);
  if (owner) await db.sql(`ALTER TABLE ${table} OWNER TO ${owner}`);
}

describe('look-alike functions and operators in a schema everyone may write', () => {
  const runners = [
    { who: 'a superuser', plan: 'lookalike-su', table: 'public.people_su', url: (): string => db.url, schema: 'pgshift' },
    { who: 'the table owner', plan: 'lookalike-owner', table: 'public.people_owner', url: (): string => urlFor(roles.owner), schema: 'pgshift_owner' },
  ];

  it('planted after the plan started: every phase, verify, rollback, lint and show run none of them, and every row is right', async () => {
    const dirs: Record<string, string> = {};
    const cli = async (r: (typeof runners)[number], args: string[]): Promise<CliResult> =>
      runCli(['plan', ...args, '--dir', dirs[r.plan]!, '--schema', r.schema, '--database-url', r.url(), '--json']);
    const ok = async (r: (typeof runners)[number], args: string[]): Promise<CliResult> => {
      const result = await cli(r, args);
      expect(result.errors, `${r.who}: ${args.join(' ')}`).toBe('');
      expect(result.code, `${r.who}: ${args.join(' ')}`).toBe(0);
      return result;
    };
    for (const r of runners) {
      await createTable(r.table, r.who === 'the table owner' ? roles.owner : null);
      dirs[r.plan] = await planDir({ [`${r.plan}.yaml`]: planYaml(r.plan, r.table) });
      await ok(r, ['lint', r.plan]);
      await ok(r, ['apply', r.plan, '--phase', 'expand']);
    }
    await plant();

    let n = 0;
    /** Old code writes the old column; from switch-read on, new code writes the new ones. */
    const traffic = async (table: string, newCode: boolean, oldCode: boolean): Promise<void> => {
      if (oldCode) {
        n++;
        await app.query(`INSERT INTO ${table} (full_name) VALUES ($1)`, [`Old${n} Writer`]);
        await app.query(`UPDATE ${table} SET full_name = $1 WHERE id = $2`, [`Moved${n} Along`, n]);
      }
      if (newCode) {
        n++;
        await app.query(`INSERT INTO ${table} (first_name, last_name) VALUES ($1, $2)`, [`New${n}`, 'Writer']);
        await app.query(`UPDATE ${table} SET first_name = $1, last_name = $2 WHERE id = $3`, [`Renamed${n}`, 'Person', n]);
      }
    };

    for (const r of runners) {
      const step = async (args: string[], newCode: boolean, oldCode = true): Promise<void> => {
        await ok(r, args);
        await traffic(r.table, newCode, oldCode);
        expect(await victims(), `${r.who}: after ${args.join(' ')}`).toEqual([]);
      };
      await traffic(r.table, false, true);
      await ok(r, ['show', r.plan, '--phase', 'dual-write']);
      await ok(r, ['lint', r.plan]);
      await step(['apply', r.plan, '--phase', 'dual-write'], false);
      await step(['apply', r.plan, '--phase', 'backfill'], false);
      await step(['verify', r.plan], false);
      await step(['apply', r.plan, '--phase', 'switch-read'], true);
      await step(['rollback', r.plan], false);
      await step(['apply', r.plan, '--phase', 'switch-read'], true);
      await step(['apply', r.plan, '--phase', 'stop-write', '--old-code-quiet', '0'], true, false);
      await step(['rollback', r.plan], true);
      await step(['apply', r.plan, '--phase', 'stop-write', '--old-code-quiet', '0'], true, false);
      await step(['verify', r.plan], true, false);
      await ok(r, ['lint', r.plan]);

      // Every row's sides agree, as pg_catalog's split_part and concat_ws would have made them.
      for (const row of await rows(r.table)) {
        const [first, last] = [row.full_name!.split(' ')[0], row.full_name!.split(' ')[1] ?? ''];
        expect({ id: row.id, first_name: row.first_name, last_name: row.last_name }).toEqual({ id: row.id, first_name: first, last_name: last });
      }
      await step(['apply', r.plan, '--phase', 'contract'], true, false);
      expect((await rows(r.table, false)).every((row) => row.first_name !== null && row.last_name !== null)).toBe(true);
    }
    expect(await victims()).toEqual([]);
  });

  it('planted before the plan starts: lint, show and apply refuse with exit 2 naming each look-alike and its owner, and change nothing', async () => {
    const columns = async (table: string): Promise<string[]> =>
      (
        await db.sql<{ c: string }>(
          `SELECT attname::text AS c FROM pg_catalog.pg_attribute WHERE attrelid = $1::pg_catalog.regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
          [table],
        )
      ).map((r) => r.c);
    for (const r of runners) {
      const table = `${r.table}_early`;
      const name = `${r.plan}-early`;
      await createTable(table, r.who === 'the table owner' ? roles.owner : null);
      const dir = await planDir({ [`${name}.yaml`]: planYaml(name, table) });
      const before = await columns(table);
      await plant();
      for (const args of [
        ['lint', name],
        ['show', name, '--phase', 'backfill'],
        ['apply', name, '--phase', 'expand'],
      ]) {
        const result = await runCli(['plan', ...args, '--dir', dir, '--schema', r.schema, '--database-url', r.url(), '--json']);
        expect(result.code, `${r.who}: ${args.join(' ')}`).toBe(2);
        const text = result.errors + result.stdout;
        expect(text).toMatch(/split\.into\[0\]\.using: binds function public\.split_part\(character varying, text, integer\), owned by role "intruder_/);
        expect(text).toMatch(/split\.reverse: binds function public\.concat_ws\(text, text, text\), owned by role "intruder_/);
      }
      expect(await columns(table)).toEqual(before);
      const state = await db.sql(`SELECT 1 FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1)`, [`${r.schema}.plans`]);
      if (state.length) expect(await db.sql(`SELECT 1 FROM ${r.schema}.plans WHERE name = $1::text`, [name])).toEqual([]);
    }
    expect(await victims()).toEqual([]);
  });

  it('names qualified as the refusal says bind pg_catalog and pass; a writable public is warned about, and refused under --strict', async () => {
    await plant();
    const table = 'public.people_qualified';
    const name = 'lookalike-qualified';
    await createTable(table, null);
    const yaml = planYaml(name, table).replaceAll('"split_part(', '"pg_catalog.split_part(').replace('"concat_ws(', '"pg_catalog.concat_ws(');
    const dir = await planDir({ [`${name}.yaml`]: yaml });
    const cli = (args: string[]): Promise<CliResult> => runCli(['plan', ...args, '--dir', dir, '--database-url', db.url, '--json']);
    const writable = /schema on the plan's search_path "public" is writable \(CREATE\) by PUBLIC/;

    const lint = await cli(['lint', name]);
    expect(lint.code).toBe(0);
    expect(lint.lines.filter((l) => l.event === 'warning').map((l) => String(l.message))).toEqual([expect.stringMatching(writable)]);
    for (const args of [
      ['lint', name, '--strict'],
      ['apply', name, '--phase', 'expand', '--strict'],
    ]) {
      const refused = await cli(args);
      expect(refused.code, args.join(' ')).toBe(2);
      expect(refused.errors, args.join(' ')).toMatch(writable);
    }
    const apply = await cli(['apply', name, '--phase', 'backfill']);
    expect(apply.errors).toBe('');
    expect(apply.code).toBe(0);
    const logged = apply.stderr.split('\n').flatMap((l) => {
      try {
        return [String((JSON.parse(l) as { msg?: unknown }).msg)];
      } catch {
        return [];
      }
    });
    expect(logged).toContainEqual(expect.stringMatching(writable));
    for (const row of await rows(table)) expect([row.first_name, row.last_name]).toEqual(row.full_name!.split(' '));
    expect(await victims()).toEqual([]);
  });

  it('keys are compared under the fixed path too: a domain over a built-in type works, a key ordered by operators outside pg_catalog is refused', async () => {
    await plant();
    const qualifiedPlan = (name: string, table: string): string =>
      planYaml(name, table).replaceAll('"split_part(', '"pg_catalog.split_part(').replace('"concat_ws(', '"pg_catalog.concat_ws(');
    await db.sql(`CREATE DOMAIN public.person_code AS text`);
    await db.sql(`CREATE TABLE public.coded (code public.person_code PRIMARY KEY, full_name varchar(100))`);
    await db.sql(`INSERT INTO public.coded SELECT 'c' || g, 'First' || g || ' Last' || g FROM generate_series(1, 50) g`);
    const dir = await planDir({ 'lookalike-coded.yaml': qualifiedPlan('lookalike-coded', 'public.coded') });
    const run = (args: string[]): Promise<CliResult> => runCli(['plan', ...args, '--dir', dir, '--database-url', db.url, '--json']);
    const backfilled = await run(['apply', 'lookalike-coded', '--phase', 'backfill']);
    expect(backfilled.errors).toBe('');
    expect(backfilled.code).toBe(0);
    const coded = await db.sql<{ full_name: string; first_name: string; last_name: string }>(
      `SELECT full_name::text AS full_name, first_name, last_name FROM public.coded`,
    );
    expect(coded).toHaveLength(50);
    for (const row of coded) expect([row.first_name, row.last_name]).toEqual(row.full_name.split(' '));

    // citext's '<' lives in public: under pg_catalog only, citext keys would be compared as text, in another order than their index.
    await db.sql(`CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public`);
    await db.sql(`CREATE TABLE public.emailed (email public.citext PRIMARY KEY, full_name text)`);
    const yaml = qualifiedPlan('lookalike-emailed', 'public.emailed');
    const refused = await runCli(['plan', 'lint', '--dir', await planDir({ 'lookalike-emailed.yaml': yaml }), '--database-url', db.url, '--json']);
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/key: key column "email" is of type public\.citext, whose ordering operators are not pg_catalog's/);
    expect(await victims()).toEqual([]);
  });
});
