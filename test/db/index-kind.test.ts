import pg from 'pg';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { apply, rollback, show, type Phase } from '../../src/index.js';
import { runContext } from '../../src/guard/context.js';
import { runSqlStep } from '../../src/runner/sql-step.js';
import type { Step } from '../../src/changes/steps.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { runCli } from '../helpers/cli.js';
import { plan, planDir } from '../helpers/fixtures.js';

/**
 * The index kind against a real server: a unique partial index replacing a
 * plain one under the same name, through every phase and back from each,
 * contract undone by its own steps and done again; a drop; a unique build
 * that meets duplicates (its INVALID leftover dropped by the next apply);
 * the locks the swap takes, read in pg_locks; and bad plans refused with
 * nothing changed.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

const GUARDS = 'guards: { lock_timeout: 500ms, statement_timeout: 10s, retries: 1 }';
const BETWEEN: Phase[] = ['expand', 'dual-write', 'backfill', 'switch-read', 'stop-write'];

/** The table's indexes as `name: definition (valid)`, sorted. */
async function indexesOf(table: string): Promise<string[]> {
  const rows = await db.sql<{ line: string }>(
    `SELECT c.relname || ': ' || pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' (INVALID)' END AS line
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass ORDER BY 1`,
    [table],
  );
  return rows.map((r) => r.line);
}

/** Run steps as the runner does, outside any plan (contract's rollback, which `plan rollback` does not reach yet). */
async function runSteps(table: string, steps: readonly Step[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const oid = (await db.sql<{ oid: number }>(`SELECT $1::regclass::oid::int AS oid`, [table]))[0]!.oid;
  const ctx = runContext({
    client,
    connection: { databaseUrl: db.url },
    guards: { lockTimeoutMs: 500, statementTimeoutMs: 10_000, retries: 1, maxWaitMs: 10_000, oldCodeQuietMs: 0 },
    log: pino({ level: 'silent' }),
    table: { oid, display: table },
  });
  try {
    const outcomes: string[] = [];
    for (const step of steps) if (step.kind === 'sql') outcomes.push(await runSqlStep(ctx, step));
    return outcomes;
  } finally {
    await ctx.close();
    await client.end();
  }
}

describe('index: replacing an index under its own name', () => {
  const yaml = `plan: accounts-email
table: public.accounts
index: { name: accounts_email_idx, expression: "lower(email)", unique: true, where: "deleted_at IS NULL", replaces: accounts_email_idx }
${GUARDS}`;

  it('goes through every phase and back from each, and contract is undone by its rollback steps and done again', async () => {
    await db.sql(`
      CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, deleted_at timestamptz);
      CREATE INDEX accounts_email_idx ON accounts (email);
      INSERT INTO accounts (email, deleted_at) SELECT 'a' || g || '@x', NULL FROM generate_series(1, 500) g;
      -- Two deleted accounts share an address: the partial unique index allows it.
      INSERT INTO accounts (email, deleted_at) VALUES ('gone@x', now()), ('GONE@x', now());`);
    const before = await indexesOf('accounts');
    const p = plan(yaml);
    const OLD = 'accounts_email_idx: CREATE INDEX accounts_email_idx ON public.accounts USING btree (email)';
    const built = (name: string): string => `${name}: CREATE UNIQUE INDEX ${name} ON public.accounts USING btree (lower(email)) WHERE (deleted_at IS NULL)`;
    const expanded = [OLD, built('accounts_email_idx_pgshift_new'), 'accounts_pkey: CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)'];

    for (const phase of BETWEEN) {
      const [forward] = await apply([p], phase, { databaseUrl: db.url });
      expect(forward!.error, `apply ${phase}`).toBeUndefined();
      expect(await indexesOf('accounts'), `at ${phase}`).toEqual(expanded);
      // New code may rely on the new index from here: a second live account with the same address is refused.
      await expect(db.sql(`INSERT INTO accounts (email) VALUES ('A1@X')`), phase).rejects.toThrow(/accounts_email_idx_pgshift_new/);
      const back = await rollback(p, phase, { databaseUrl: db.url });
      expect(back.phases, `rollback ${phase}`).toEqual([phase]);
      if (phase === 'expand') {
        expect(await indexesOf('accounts'), 'expand rolled back').toEqual(before);
        await db.sql(`INSERT INTO accounts (email) VALUES ('A1@X'); DELETE FROM accounts WHERE email = 'A1@X'`);
      } else expect(await indexesOf('accounts'), `${phase} rolled back`).toEqual(expanded);
      const [again] = await apply([p], phase, { databaseUrl: db.url });
      expect(again!.error, `apply ${phase} again`).toBeUndefined();
    }

    const [contract] = await apply([p], 'contract', { databaseUrl: db.url });
    expect(contract!.error).toBeUndefined();
    const contracted = [built('accounts_email_idx'), 'accounts_pkey: CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)'];
    expect(await indexesOf('accounts')).toEqual(contracted);

    const [shown] = await show(p, 'contract', { databaseUrl: db.url });
    expect(await runSteps('public.accounts', shown!.rollback)).toEqual(['ran', 'ran']);
    expect(await indexesOf('accounts'), "contract's rollback").toEqual(expanded);
    // Done again, each step finds its work still to do; a second run finds it done.
    expect(await runSteps('public.accounts', shown!.apply)).toEqual(['ran', 'ran']);
    expect(await indexesOf('accounts')).toEqual(contracted);
    expect(await runSteps('public.accounts', shown!.apply)).toEqual(['skipped', 'skipped']);
    expect(await indexesOf('accounts')).toEqual(contracted);
  });

  it('takes SHARE UPDATE EXCLUSIVE on the index alone to rename it, so a writer holding the table does not hold it up', async () => {
    await db.sql(`CREATE TABLE lockcheck (id bigserial PRIMARY KEY, v int); CREATE INDEX lockcheck_v_new ON lockcheck (v)`);
    const writer = await db.connect();
    const runner = await db.connect();
    try {
      // A writer in the middle of a transaction: ROW EXCLUSIVE on the table and its indexes until it commits.
      await writer.query(`BEGIN; INSERT INTO lockcheck (v) VALUES (1)`);
      await runner.query('BEGIN');
      await runner.query(`SET LOCAL lock_timeout = '1s'`);
      await runner.query(`ALTER INDEX "public"."lockcheck_v_new" RENAME TO "lockcheck_v"`);
      const { rows } = await runner.query<{ rel: string; mode: string }>(
        `SELECT c.relname AS rel, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relnamespace = 'public'::regnamespace ORDER BY 1, 2`,
      );
      expect(rows).toEqual([{ rel: 'lockcheck_v', mode: 'ShareUpdateExclusiveLock' }]);
      await runner.query('COMMIT');
    } finally {
      await writer.query('ROLLBACK').catch(() => undefined);
      await writer.end();
      await runner.end();
    }
  });
});

describe('index: dropping an index', () => {
  it('keeps it until contract, drops it there, and builds it again on rollback', async () => {
    await db.sql(`CREATE TABLE events (id bigserial PRIMARY KEY, kind text, at timestamptz);
      CREATE INDEX events_kind_at_idx ON events (kind, at DESC) WHERE kind <> 'noise';
      INSERT INTO events (kind, at) SELECT 'k' || (g % 7), now() FROM generate_series(1, 300) g;`);
    const before = await indexesOf('events');
    const p = plan(`plan: drop-events-kind\ntable: public.events\nindex: { name: events_kind_at_idx, drop: true }\n${GUARDS}`);
    const [upTo] = await apply([p], 'stop-write', { databaseUrl: db.url });
    expect(upTo!.error).toBeUndefined();
    expect(await indexesOf('events')).toEqual(before);
    const [contract] = await apply([p], 'contract', { databaseUrl: db.url });
    expect(contract!.error).toBeUndefined();
    expect(await indexesOf('events')).toEqual(['events_pkey: CREATE UNIQUE INDEX events_pkey ON public.events USING btree (id)']);
    const [shown] = await show(p, 'contract', { databaseUrl: db.url });
    expect(await runSteps('public.events', shown!.rollback)).toEqual(['ran']);
    expect(await indexesOf('events')).toEqual(before);
  });
});

describe('index: a unique build that meets duplicates', () => {
  it('fails expand with the duplicate named, and the next apply drops the INVALID index it left and builds it again', async () => {
    await db.sql(`CREATE TABLE handles (id bigserial PRIMARY KEY, handle text NOT NULL);
      INSERT INTO handles (handle) SELECT 'h' || g FROM generate_series(1, 200) g; INSERT INTO handles (handle) VALUES ('h7')`);
    const p = plan(`plan: handles-unique\ntable: public.handles\nindex: { name: handles_handle_key, columns: [handle], unique: true }\n${GUARDS}`);
    const [failed] = await apply([p], 'expand', { databaseUrl: db.url });
    expect(failed!.error?.message).toMatch(/could not create unique index "handles_handle_key"[\s\S]*\(handle\)=\(h7\)/);
    expect(await indexesOf('handles')).toContain('handles_handle_key: CREATE UNIQUE INDEX handles_handle_key ON public.handles USING btree (handle) (INVALID)');
    await db.sql(`DELETE FROM handles WHERE id = (SELECT max(id) FROM handles)`);
    const [again] = await apply([p], 'expand', { databaseUrl: db.url });
    expect(again!.error).toBeUndefined();
    expect(await indexesOf('handles')).toContain('handles_handle_key: CREATE UNIQUE INDEX handles_handle_key ON public.handles USING btree (handle)');
  });
});

describe('index: the names an expression meant at plan start', () => {
  it('are the ones built, when a re-run of expand meets a look-alike and a search_path that prefers it', async () => {
    await db.sql(`CREATE SCHEMA planted; CREATE TABLE logins (id bigserial PRIMARY KEY, email text NOT NULL);
      INSERT INTO logins (email) SELECT 'u' || g || '@x' FROM generate_series(1, 100) g; INSERT INTO logins (email) VALUES ('U1@X')`);
    const p = plan(`plan: logins-email\ntable: public.logins\nindex: { name: logins_email_key, expression: "lower(email)", unique: true }\n${GUARDS}`);
    // The first attempt records the plan's facts, then fails on the duplicate.
    const [failed] = await apply([p], 'expand', { databaseUrl: db.url });
    expect(failed!.error?.message).toMatch(/could not create unique index "logins_email_key"/);
    await db.sql(`DELETE FROM logins WHERE email = 'U1@X';
      CREATE FUNCTION planted.lower(text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'planted' $$`);
    const url = new URL(db.url);
    url.searchParams.set('options', '-c search_path=planted,pg_catalog,public');
    const [again] = await apply([p], 'expand', { databaseUrl: url.toString() });
    expect(again!.error).toBeUndefined();
    const [def] = await db.sql<{ d: string; fn: string }>(
      `SELECT pg_get_indexdef('logins_email_key'::regclass) AS d,
              (SELECT p.oid::regprocedure::text FROM pg_depend d JOIN pg_proc p ON p.oid = d.refobjid
                WHERE d.classid = 'pg_class'::regclass AND d.objid = 'logins_email_key'::regclass AND d.refclassid = 'pg_proc'::regclass) AS fn`,
    );
    expect(def).toEqual({ d: 'CREATE UNIQUE INDEX logins_email_key ON public.logins USING btree (lower(email))', fn: null });
    // The look-alike would have bound here: the build ran under pg_catalog, pg_temp, not the session's path.
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_depend WHERE refobjid = 'planted.lower(text)'::regprocedure`)).toEqual([{ n: 0 }]);
  });
});

describe('index: a look-alike planted before the plan starts', () => {
  it('is refused, naming it and its owner, when the expression would bind it', async () => {
    const owner = `lookalike_${db.name}`;
    await db.sql(`CREATE ROLE ${owner} NOLOGIN; CREATE SCHEMA shady AUTHORIZATION ${owner};
      CREATE TABLE members (id bigserial PRIMARY KEY, email text NOT NULL);
      CREATE FUNCTION shady.lower(text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'planted' $$;
      ALTER FUNCTION shady.lower(text) OWNER TO ${owner}`);
    try {
      const url = new URL(db.url);
      url.searchParams.set('options', '-c search_path=shady,pg_catalog,public');
      const p = plan(`plan: members-email\ntable: public.members\nindex: { name: members_email_idx, expression: "lower(email)" }\n${GUARDS}`);
      const [out] = await apply([p], 'expand', { databaseUrl: url.toString() });
      expect(out!.error?.message).toMatch(
        new RegExp(`index\\.expression: binds function shady\\.lower\\(text\\), owned by role "${owner}", which is neither a superuser`),
      );
      expect(await indexesOf('members')).toEqual(['members_pkey: CREATE UNIQUE INDEX members_pkey ON public.members USING btree (id)']);
      // Written as the built-in it means, it is pg_catalog's, and the plan goes on.
      const [meant] = await apply(
        [plan(`plan: members-email\ntable: public.members\nindex: { name: members_email_idx, expression: "pg_catalog.lower(email)" }\n${GUARDS}`)],
        'expand',
        {
          databaseUrl: url.toString(),
        },
      );
      expect(meant!.error).toBeUndefined();
    } finally {
      await db.sql(`DROP SCHEMA shady CASCADE; DROP ROLE ${owner}`);
    }
  });
});

describe('index: bad plans', () => {
  it('refuses each with its field named, before anything runs', async () => {
    await db.sql(`CREATE TABLE refusals (id bigserial PRIMARY KEY, email text, CONSTRAINT refusals_email_key UNIQUE (email));
      CREATE INDEX refusals_email_idx ON refusals (email);
      CREATE TABLE parted (id bigint, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
    const before = await indexesOf('refusals');
    const cases: [string, RegExp][] = [
      ['{ name: x_idx, columns: [nope] }', /index\.columns: column "nope" does not exist in public\.refusals/],
      ['{ name: x_idx, columns: [email], expression: "lower(email)" }', /index: give the index its keys: either index\.columns or index\.expression, not both/],
      ['{ name: x_idx }', /index: give the index its keys/],
      ['{ name: refusals_email_idx, columns: [email] }', /index\.name: public\.refusals_email_idx already exists; pick another name/],
      ['{ name: x_idx, columns: [email], replaces: nope_idx }', /index\.replaces: public\.refusals has no index "nope_idx"/],
      ['{ name: refusals_email_key, drop: true }', /index\.name: index "refusals_email_key" backs the constraint "refusals_email_key"/],
      ['{ name: refusals_email_idx, drop: true, unique: true }', /index\.unique: a drop builds nothing/],
      ['{ name: x_idx, expression: "no_such_fn(email)" }', /index\.expression: does not compile: function no_such_fn\(text\) does not exist/],
      [
        `{ name: x_idx, expression: "email); DROP TABLE refusals; CREATE INDEX y ON refusals (email" }`,
        /index\.expression: does not compile: cannot insert multiple commands into a prepared statement/,
      ],
    ];
    for (const [index, message] of cases) {
      const [out] = await apply([plan(`plan: bad\ntable: public.refusals\nindex: ${index}\n${GUARDS}`)], 'expand', { databaseUrl: db.url });
      expect(out!.error?.message, index).toMatch(message);
      expect(out!.error?.constructor.name, index).toBe('PlanError');
    }
    const [parted] = await apply([plan(`plan: bad\ntable: public.parted\nindex: { name: parted_at_idx, columns: [at] }\n${GUARDS}`)], 'expand', {
      databaseUrl: db.url,
    });
    expect(parted!.error?.message).toMatch(/index: public\.parted is partitioned/);
    // Through the CLI: exit 2, the file and field named.
    const dir = await planDir({ 'bad.yaml': `plan: bad\ntable: public.refusals\nindex: { name: x_idx, columns: [nope] }\n${GUARDS}` });
    const cli = await runCli(['plan', 'apply', 'bad', '--phase', 'expand', '--dir', dir, '--database-url', db.url]);
    expect(cli.code).toBe(2);
    expect(cli.errors).toMatch(/bad\.yaml index\.columns: column "nope" does not exist in public\.refusals/);
    expect(await indexesOf('refusals')).toEqual(before);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.plans WHERE name = 'bad'`).catch(() => [{ n: 0 }])).toEqual([{ n: 0 }]);
  });
});
