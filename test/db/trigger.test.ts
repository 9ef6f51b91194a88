import { beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../src/index.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

describe('the dual-write trigger', () => {
  it('does not depend on the session search_path, as through a pooler', async () => {
    await db.sql(`CREATE SCHEMA lib`);
    await db.sql(`CREATE FUNCTION lib.initial(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(left(t, 1)) $$`);
    await db.sql(`CREATE TABLE people (id int PRIMARY KEY, name text)`);
    await db.sql(`INSERT INTO people VALUES (1, 'ada')`);
    // The plan is checked and started with lib on the path, as its author would.
    await db.sql(`ALTER DATABASE ${db.name} SET search_path = public, lib`);
    const p = plan(
      `plan: initials\ntable: people\nsplit:\n  column: name\n  into:\n    - { name: initial, type: text, using: "initial(name)" }\n    - { name: rest, type: text, using: "substr(name, 2)" }\n  reverse: "lower(initial) || rest"\n`,
    );
    const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url });
    expect(outcome!.error).toBeUndefined();
    await db.sql(`ALTER DATABASE ${db.name} RESET search_path`);

    // An application session whose search_path finds neither lib nor public.
    const app = await db.connect();
    await app.query(`SET search_path = pg_catalog`);
    await app.query(`INSERT INTO public.people (id, name) VALUES (2, 'grace')`);
    await app.query(`INSERT INTO public.people (id, initial, rest) VALUES (3, 'B', 'arbara')`);
    await app.query(`UPDATE public.people SET name = 'alan' WHERE id = 1`);
    await app.end();
    expect(await db.sql(`SELECT id, name, initial, rest FROM people ORDER BY id`)).toEqual([
      { id: 1, name: 'alan', initial: 'A', rest: 'lan' },
      { id: 2, name: 'grace', initial: 'G', rest: 'race' },
      { id: 3, name: 'barbara', initial: 'B', rest: 'arbara' },
    ]);
  });

  it('on UPDATE fills the side that did not change, and leaves both alone when neither did', async () => {
    await db.sql(`CREATE TABLE acc (id int PRIMARY KEY, handle text, note text)`);
    await db.sql(`INSERT INTO acc VALUES (1, 'one', 'x'), (2, 'two', 'x')`);
    const [outcome] = await apply([plan('plan: acc\ntable: acc\nrename: { column: handle, to: login }\n')], 'switch-read', { databaseUrl: db.url });
    expect(outcome!.error).toBeUndefined();
    await db.sql(`UPDATE acc SET handle = 'uno' WHERE id = 1`);
    await db.sql(`UPDATE acc SET login = 'dos' WHERE id = 2`);
    expect(await db.sql(`SELECT id, handle, login FROM acc ORDER BY id`)).toEqual([
      { id: 1, handle: 'uno', login: 'uno' },
      { id: 2, handle: 'dos', login: 'dos' },
    ]);
    // Both changed (only new code knows both): the new side wins.
    await db.sql(`UPDATE acc SET handle = 'left', login = 'right' WHERE id = 1`);
    await db.sql(`UPDATE acc SET note = 'y' WHERE id = 2`);
    expect(await db.sql(`SELECT id, handle, login, note FROM acc ORDER BY id`)).toEqual([
      { id: 1, handle: 'right', login: 'right', note: 'x' },
      { id: 2, handle: 'dos', login: 'dos', note: 'y' },
    ]);
  });

  it("stands aside for the backfill's own writes in every sync mode, and only for them", async () => {
    await db.sql(`CREATE TABLE names (id int PRIMARY KEY, full_name text NOT NULL DEFAULT 'anonymous')`);
    await db.sql(`INSERT INTO names VALUES (1, 'Ada Lovelace')`);
    const p = plan(
      `plan: names\ntable: names\nsplit:\n  column: full_name\n  into:\n    - { name: first_name, type: text, using: "split_part(full_name, ' ', 1)" }\n` +
        `    - { name: last_name, type: text, using: "nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)" }\n` +
        `  reverse: "concat_ws(' ', first_name, last_name)"\n`,
    );
    // A write setting the new side as a backfill batch does: in its transaction the old side is never re-derived.
    const backfillLike = async (first: string): Promise<unknown> => {
      const c = await db.connect();
      try {
        await c.query('BEGIN');
        await c.query(`SELECT set_config('pgshift.backfill', 'on', true)`);
        await c.query(`UPDATE names SET first_name = $1 WHERE id = 1`, [first]);
        await c.query('COMMIT');
      } finally {
        await c.end();
      }
      return (await db.sql(`SELECT full_name, first_name FROM names WHERE id = 1`))[0];
    };
    for (const phase of ['backfill', 'switch-read', 'stop-write'] as const) {
      const [outcome] = await apply([p], phase, { databaseUrl: db.url });
      expect(outcome!.error, phase).toBeUndefined();
      await db.sql(`UPDATE names SET first_name = 'Ada', last_name = 'Lovelace', full_name = 'Ada Lovelace' WHERE id = 1`);
      expect(await backfillLike(`Augusta-${phase}`), phase).toEqual({ full_name: 'Ada Lovelace', first_name: `Augusta-${phase}` });
      // The same write outside a backfill transaction is new code's: the old side follows.
      await db.sql(`UPDATE names SET first_name = 'Augusta' WHERE id = 1`);
      expect(await db.sql(`SELECT full_name FROM names WHERE id = 1`), phase).toEqual([{ full_name: 'Augusta Lovelace' }]);
    }
  });

  it('reads the row itself: the function inlines the expressions over NEW, with no WHEN clause to prepare on every statement', async () => {
    await db.sql(`CREATE TABLE folks (id int PRIMARY KEY, full_name text)`);
    const p = plan(
      `plan: folks\ntable: folks\nsplit:\n  column: full_name\n  into:\n    - { name: first_name, type: text, using: "split_part(full_name, ' ', 1)" }\n` +
        `    - { name: last_name, type: text, using: "nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)" }\n` +
        `  reverse: "concat_ws(' ', first_name, last_name)"\n`,
    );
    const [outcome] = await apply([p], 'dual-write', { databaseUrl: db.url });
    expect(outcome!.error).toBeUndefined();
    const [fn] = await db.sql<{ src: string; config: string[] | null }>(`SELECT prosrc AS src, proconfig AS config FROM pg_proc WHERE proname = 'folks_sync'`);
    // Only pg_catalog is searched (issue 19): a session's search_path cannot bring in a better-matching look-alike.
    expect(fn!.config).toEqual(['search_path=pg_catalog, pg_temp']);
    // The expression functions the backfill calls: bound at CREATE (SQL-standard body), no SET clause, so still inlined.
    const expressions = await db.sql<{ config: string[] | null; bound: boolean }>(
      `SELECT proconfig AS config, prosqlbody IS NOT NULL AS bound FROM pg_proc WHERE proname IN ('folks_fwd0', 'folks_fwd1', 'folks_rev0')`,
    );
    expect(expressions).toEqual([1, 2, 3].map(() => ({ config: null, bound: true })));
    expect(fn!.src).toContain(`NEW."first_name" := split_part(new.full_name, ' '::text, 1);`);
    expect(fn!.src).toContain(`NEW."full_name" := concat_ws(' '::text, new.first_name, new.last_name);`);
    expect(fn!.src).not.toContain('DECLARE');
    expect(fn!.src).not.toMatch(/folks_(fwd|rev)/);
    // One trigger per event: neither function spends an expression on TG_OP.
    const triggers = await db.sql<{ def: string }>(`SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgname LIKE 'pgshift_folks%' ORDER BY tgname`);
    expect(triggers.map((t) => t.def.replace(/ ON .*/, ''))).toEqual([
      'CREATE TRIGGER pgshift_folks BEFORE UPDATE',
      'CREATE TRIGGER pgshift_folks_insert BEFORE INSERT',
    ]);
    for (const t of triggers) expect(t.def).not.toContain('WHEN');
    const [insert] = await db.sql<{ src: string }>(`SELECT prosrc AS src FROM pg_proc WHERE proname = 'folks_sync_insert'`);
    expect(insert!.src).toContain(`NEW."first_name" := split_part(new.full_name, ' '::text, 1);`);
    for (const src of [fn!.src, insert!.src]) expect(src).not.toContain('TG_OP');
  });
});

describe('output', () => {
  it('never prints the password of the connection URL', async () => {
    const url = new URL(db.url);
    url.password = 'S3cretPassw0rd';
    const result = await runCli(['plan', 'status', '--dir', 'plans', '--database-url', url.toString()], { PGSHIFT_LOG_LEVEL: 'debug' });
    expect(result.code).toBe(1);
    expect(result.errors).toMatch(/password authentication failed|authentication/);
    expect(result.stdout + result.stderr).not.toContain('S3cretPassw0rd');
  });

  it('prints help for every command and exits 0', async () => {
    for (const verb of ['apply', 'status', 'rollback', 'verify', 'show', 'lint']) {
      const result = await runCli(['plan', verb, '--help']);
      expect(result.code, verb).toBe(0);
      expect(result.stdout).toContain(`Usage: migrate plan ${verb}`);
    }
  });
});
