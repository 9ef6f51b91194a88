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
    const p = plan(`plan: initials\ntable: people\nsplit:\n  column: name\n  into:\n    - { name: initial, type: text, using: "initial(name)" }\n    - { name: rest, type: text, using: "substr(name, 2)" }\n  reverse: "lower(initial) || rest"\n`);
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
