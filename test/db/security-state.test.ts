import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { describeDatabase } from '../helpers/catalog.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, SPLIT_YAML, splitPlanYaml, USERS_TABLE } from '../helpers/fixtures.js';

/**
 * Issue 19, the state schema and the names pgshift makes: a role that may
 * create objects in a schema on the search path (`public` on PostgreSQL 14
 * by default; granted here on 15+) must not get code of its own run by
 * pgshift as the superuser that runs it, nor deny a deploy through the
 * gate's function, nor have pgshift take over an object of its name.
 */

let db: TestDatabase;
/** Roles are cluster-wide: named after this file's database. */
let intruder: string;
let app: string;
let reader: string;
let splitDir: string;

function urlAs(role: string): string {
  const url = new URL(db.url);
  url.username = role;
  url.password = 'pw';
  return url.toString();
}

async function as<T>(role: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: urlAs(role) });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const cli = (verb: string, dir: string, ...rest: string[]): Promise<CliResult> => runCli(['plan', verb, ...rest, '--dir', dir, '--database-url', db.url]);

/** Who the intruder's trigger functions ran as, other than the intruder itself. */
async function ranAsOthers(): Promise<string[]> {
  const rows = await db.sql<{ who: string }>(`SELECT DISTINCT who FROM public.intruder_log WHERE who <> $1 ORDER BY 1`, [intruder]);
  return rows.map((r) => r.who);
}

beforeAll(async () => {
  db = await freshDatabase();
  intruder = `${db.name}_intruder`;
  app = `${db.name}_app`;
  reader = `${db.name}_reader`;
  for (const role of [intruder, app, reader]) await db.sql(`CREATE ROLE "${role}" LOGIN PASSWORD 'pw'`);
  // PostgreSQL 14's default, and what every database upgraded from 14 or earlier still has.
  await db.sql(`GRANT CREATE ON SCHEMA public TO PUBLIC`);
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(100));
  await db.sql(`GRANT SELECT, INSERT, UPDATE ON users TO "${app}"; GRANT USAGE ON SEQUENCE users_id_seq TO "${app}"`);
  // The intruder's evidence: every trigger function of its own writes current_user here.
  await as(intruder, async (c) => {
    await c.query(`CREATE TABLE public.intruder_log (who text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
    await c.query(`GRANT INSERT ON public.intruder_log TO PUBLIC`);
    await c.query(`CREATE FUNCTION public.spy() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN INSERT INTO public.intruder_log (who) VALUES (current_user); RETURN NEW; END $$`);
  });
  splitDir = await planDir({ 'split.yaml': SPLIT_YAML });
  afterAll(async () => {
    await db.sql(`DROP OWNED BY "${intruder}", "${app}", "${reader}" CASCADE`).catch(() => undefined);
    const admin = new pg.Client({ connectionString: inject('adminUrl') });
    await admin.connect();
    for (const role of [intruder, app, reader]) await admin.query(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined);
    await admin.end();
  });
});

describe('a squatted state schema', () => {
  it('public.old_code_writes made first by another role, with a trigger: lint and apply --schema public refuse, exit 2, nothing changed', async () => {
    await as(intruder, async (c) => {
      await c.query(`CREATE TABLE public.old_code_writes (plan text NOT NULL, pid integer NOT NULL, backend_start timestamptz NOT NULL,
                       first_at timestamptz NOT NULL, application_name text, usename text, client_addr inet, PRIMARY KEY (plan, pid, backend_start))`);
      await c.query(`GRANT ALL ON public.old_code_writes TO PUBLIC`);
      await c.query(`CREATE TRIGGER spy BEFORE INSERT ON public.old_code_writes FOR EACH ROW EXECUTE FUNCTION public.spy()`);
    });
    const before = await describeDatabase(db);
    for (const [verb, ...args] of [['lint'], ['apply', '--phase', 'dual-write']]) {
      const result = await cli(verb!, splitDir, ...args, '--schema', 'public');
      expect(result.code).toBe(2);
      expect(result.errors).toContain(`the state schema "public" cannot be trusted by the runner`);
      expect(result.errors).toContain(`table "public"."old_code_writes" (owner "${intruder}") is not owned by the runner`);
      expect(result.errors).toContain(`trigger "spy" on "public"."old_code_writes" (function public.spy()) (owner "${intruder}") was not made by pgshift`);
      expect(result.errors).toContain('Nothing was changed');
    }
    expect(await describeDatabase(db)).toEqual(before);
    expect(await db.sql(`SELECT to_regclass('public.plans') AS t`)).toEqual([{ t: null }]);
    // What old code's write would have set off, had the plan been applied: the intruder's trigger, as the superuser.
    await db.sql(`INSERT INTO users (full_name, user_name, email) VALUES ('Old Code', 'old', 'old@example.com')`);
    await as(app, (c) => c.query(`UPDATE users SET full_name = 'Old Again' WHERE user_name = 'old'`));
    expect(await ranAsOthers()).toEqual([]);
    await as(intruder, (c) => c.query(`DROP TABLE public.old_code_writes`));
  });

  it('a public schema that holds none of the state: refused too, since another role could put a look-alike first', async () => {
    const result = await cli('apply', splitDir, '--phase', 'expand', '--schema', 'public');
    expect(result.code).toBe(2);
    expect(result.errors).toMatch(
      /schema "public" \(owner "[^"]+"\) .*lets .*PUBLIC.* create objects in it, so pgshift will not create its state tables there/,
    );
    expect(await db.sql(`SELECT to_regclass('public.plans') AS t`)).toEqual([{ t: null }]);
  });

  it('a state schema owned by another role is refused, exit 2, naming it and its owner', async () => {
    await db.sql(`CREATE SCHEMA theirs AUTHORIZATION "${intruder}"`);
    const before = await describeDatabase(db);
    for (const [verb, ...args] of [['lint'], ['apply', '--phase', 'expand']]) {
      const result = await cli(verb!, splitDir, ...args, '--schema', 'theirs');
      expect(result.code).toBe(2);
      expect(result.errors).toContain(`schema "theirs" (owner "${intruder}") is not owned by the runner`);
    }
    expect(await describeDatabase(db)).toEqual(before);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'theirs'::regnamespace`)).toEqual([{ n: 0 }]);
  });

  it("a trigger on one of pgshift's own state tables, and a state function given to another role, are refused", async () => {
    const dir = await planDir({ 'split.yaml': splitPlanYaml('split-own', 'public.users', '{ batch_size: 500 }', '{ lock_timeout: 500ms }') });
    expect((await cli('apply', dir, '--phase', 'expand', '--schema', 'own_state')).code).toBe(0);
    await db.sql(`CREATE TRIGGER spy BEFORE INSERT ON own_state.events FOR EACH ROW EXECUTE FUNCTION public.spy()`);
    const refused = await cli('apply', dir, '--phase', 'dual-write', '--schema', 'own_state');
    expect(refused.code).toBe(2);
    expect(refused.errors).toContain(`trigger "spy" on "own_state"."events" (function public.spy()) (owner "${intruder}") was not made by pgshift`);
    expect(await db.sql(`SELECT phase FROM own_state.plans`)).toEqual([{ phase: 'expand' }]);
    await db.sql(`DROP TRIGGER spy ON own_state.events`);

    await db.sql(`ALTER FUNCTION own_state.phase(text) OWNER TO "${intruder}"`);
    const status = await cli('status', dir, '--schema', 'own_state');
    expect(status.code).toBe(2);
    expect(status.errors).toContain(`function own_state.phase(text) (owner "${intruder}") is not owned by the runner`);
    await db.sql(`ALTER FUNCTION own_state.phase(text) OWNER TO CURRENT_USER`);
    expect((await cli('rollback', dir, 'split-own', '--schema', 'own_state')).code).toBe(0);
    expect(await ranAsOthers()).toEqual([]);

    // Every state table still the runner's, but the schema given away: its owner may drop and replace them mid-run.
    await db.sql(`ALTER SCHEMA own_state OWNER TO "${intruder}"`);
    const given = await cli('status', dir, '--schema', 'own_state');
    expect(given.code).toBe(2);
    expect(given.errors).toContain(`schema "own_state" (owner "${intruder}") is not owned by the runner`);
    await db.sql(`ALTER SCHEMA own_state OWNER TO CURRENT_USER`);

    // Another runner role with every grant on the state tables is no owner of them: refused, not trusted with them.
    await db.sql(`GRANT USAGE ON SCHEMA own_state TO "${app}"; GRANT ALL ON ALL TABLES IN SCHEMA own_state TO "${app}"`);
    const other = await runCli(['plan', 'status', '--dir', dir, '--schema', 'own_state', '--database-url', urlAs(app)]);
    expect(other.code).toBe(2);
    expect(other.errors).toContain(`the state schema "own_state" cannot be trusted by the runner "${app}"`);
    expect(other.errors).toMatch(/table "own_state"\."plans" \(owner "[^"]+"\) is not owned by the runner/);
  });
});

describe("the old-code gate's function", () => {
  const PLAN = 'split-users-full-name';
  const rows = async (): Promise<number> => (await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.old_code_writes`))[0]!.n;

  beforeAll(async () => {
    const applied = await cli('apply', splitDir, '--phase', 'dual-write');
    expect(applied.errors).toBe('');
    await db.sql(`GRANT USAGE ON SCHEMA pgshift TO "${reader}", "${app}"`);
  });

  it('refuses a plan not in flight, a name over the cap and a caller without rights on the table, storing nothing; records a writer once', async () => {
    const before = await rows();
    await as(app, async (c) => {
      await expect(c.query(`SELECT pgshift.old_code_write('no-such-plan')`)).rejects.toThrow(/is not a plan in flight/);
      await expect(c.query(`SELECT pgshift.old_code_write(repeat('a', 6400))`)).rejects.toThrow(/is not a plan in flight/);
    });
    await as(reader, async (c) => {
      await c.query(`SET application_name = 'old-release'`);
      await expect(c.query(`SELECT pgshift.old_code_write($1)`, [PLAN])).rejects.toThrow(/may not write/);
    });
    expect(await rows()).toBe(before);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.old_code_writes WHERE usename = $1 OR application_name = 'old-release'`, [reader])).toEqual([
      { n: 0 },
    ]);

    // And still records a caller that may write the table, once per session.
    await as(app, async (c) => {
      await c.query(`SET application_name = '${'x'.repeat(200)}'`);
      await c.query(`SELECT pgshift.old_code_write($1)`, [PLAN]);
      await c.query(`SELECT pgshift.old_code_write($1)`, [PLAN]);
    });
    // PostgreSQL itself keeps 63 bytes of application_name; the function keeps at most 64 characters whatever a later server does.
    const recorded = await db.sql<{ usename: string; len: number }>(
      `SELECT usename, length(application_name) AS len FROM pgshift.old_code_writes WHERE plan = $1`,
      [PLAN],
    );
    expect(recorded).toEqual([{ usename: app, len: expect.any(Number) }]);
    expect(recorded[0]!.len).toBeLessThanOrEqual(64);
  });

  it('does not grow past its bound under a loop of calls', async () => {
    // Distinct names and application_names from one session: nothing new but its one row.
    const before = await rows();
    await as(app, async (c) => {
      await c.query(`DO $$ BEGIN
                       FOR i IN 1..2000 LOOP
                         PERFORM set_config('application_name', 'loop-' || i, false);
                         BEGIN PERFORM pgshift.old_code_write('plan-' || i); EXCEPTION WHEN OTHERS THEN NULL; END;
                         PERFORM pgshift.old_code_write('${PLAN}');
                       END LOOP;
                     END $$`);
    });
    expect(await rows()).toBe(before + 1);
    // Sessions without end (a role reconnecting in a loop): the plan's rows stay at the bound, the newest kept.
    await db.sql(
      `INSERT INTO pgshift.old_code_writes (plan, pid, backend_start, first_at, application_name, usename)
                  SELECT $1, -g, now() - interval '1 hour', now() - interval '1 hour' + g * interval '1 ms', 'filler', 'filler' FROM generate_series(1, 1000) g`,
      [PLAN],
    );
    const full = await rows();
    for (let i = 0; i < 5; i++)
      await as(app, (c) => c.query(`SELECT set_config('application_name', 'fresh-' || $2, false), pgshift.old_code_write($1)`, [PLAN, i]));
    expect(await rows()).toBe(full);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.old_code_writes WHERE application_name = 'filler'`)).toEqual([{ n: 995 }]);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.old_code_writes WHERE application_name LIKE 'fresh-%'`)).toEqual([{ n: 5 }]);
  });
});

describe('names pgshift creates', () => {
  it("a user's trigger of the sync trigger's name is refused in lint and apply (exit 2), and survives", async () => {
    await db.sql(`CREATE TABLE people (id bigint PRIMARY KEY, full_name text, user_name text, email text)`);
    await db.sql(`INSERT INTO people SELECT id, full_name, user_name, email FROM users`);
    await db.sql(`CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`);
    await db.sql(`CREATE TRIGGER "pgshift_split-people" BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION public.audit()`);
    const dir = await planDir({ 'people.yaml': splitPlanYaml('split-people', 'public.people', '{ batch_size: 500 }', '{ lock_timeout: 500ms }') });
    const before = await describeDatabase(db);
    for (const [verb, ...args] of [['lint'], ['apply', '--phase', 'dual-write']]) {
      const result = await cli(verb!, dir, ...args);
      expect(result.code).toBe(2);
      expect(result.errors).toContain(`trigger "pgshift_split-people" on public.people exists and is not pgshift's (it runs public.audit()`);
    }
    expect(await describeDatabase(db)).toEqual(before);
    expect(
      await db.sql(`SELECT tgfoid::regprocedure::text AS fn FROM pg_trigger WHERE tgrelid = 'people'::regclass AND tgname = 'pgshift_split-people'`),
    ).toEqual([{ fn: 'audit()' }]);

    // The same once the plan is in flight: made after expand, refused before dual-write would replace it.
    await db.sql(`DROP TRIGGER "pgshift_split-people" ON people`);
    expect((await cli('apply', dir, '--phase', 'expand')).code).toBe(0);
    await db.sql(`CREATE TRIGGER "pgshift_split-people" BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION public.audit()`);
    for (const [verb, ...args] of [['lint'], ['apply', '--phase', 'dual-write']]) {
      const result = await cli(verb!, dir, ...args);
      expect(result.code).toBe(2);
      expect(result.errors).toContain(`trigger "pgshift_split-people" on public.people exists and is not pgshift's (it runs public.audit()`);
    }
    expect(await db.sql(`SELECT phase FROM pgshift.plans WHERE name = 'split-people'`)).toEqual([{ phase: 'expand' }]);
    expect(
      await db.sql(`SELECT tgfoid::regprocedure::text AS fn FROM pg_trigger WHERE tgrelid = 'people'::regclass AND tgname = 'pgshift_split-people'`),
    ).toEqual([{ fn: 'audit()' }]);
  });
});
