import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir } from '../helpers/fixtures.js';

/**
 * The `rename-table` kind beyond the lifecycle table (test/db/roles.test.ts):
 * what follows the table across the rename and back, the compatibility
 * view's privileges, what lint says and refuses.
 */

let db: TestDatabase;
let app = '';
let clerk = '';
let major = 0;
const clients: pg.Client[] = [];

beforeAll(async () => {
  db = await freshDatabase();
  const suffix = db.name.replace(/^pgshift_/, '');
  app = `rt_app_${suffix}`;
  clerk = `rt_clerk_${suffix}`;
  for (const r of [app, clerk]) await db.sql(`CREATE ROLE ${r} LOGIN PASSWORD 'pw' NOSUPERUSER`);
  await db.sql(`GRANT USAGE ON SCHEMA public TO ${app}, ${clerk}`);
  major = Math.floor(Number((await db.sql<{ v: string }>(`SELECT current_setting('server_version_num') AS v`))[0]!.v) / 10000);
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const r of [app, clerk]) if (r) await db.sql(`DROP OWNED BY ${r} CASCADE`).catch(() => undefined);
  await db.client.end().catch(() => undefined);
  for (const r of [app, clerk]) if (r) await db.sql(`DROP ROLE IF EXISTS ${r}`).catch(() => undefined);
});

async function login(role: string): Promise<pg.Client> {
  const url = new URL(db.url);
  url.username = role;
  url.password = 'pw';
  const c = new pg.Client({ connectionString: url.toString() });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

const cli = (dir: string, ...args: string[]) => runCli(['plan', ...args, '--dir', dir, '--database-url', db.url]);
const relkind = async (name: string): Promise<string | null> =>
  (await db.sql<{ k: string | null }>(`SELECT (SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)) AS k`, [name]))[0]!.k;

describe('rename-table', () => {
  it('moves indexes, foreign keys, sequences, triggers, views and grants with the table, and back on rollback', async () => {
    await db.sql(`
      CREATE TABLE regions (id bigint PRIMARY KEY); INSERT INTO regions VALUES (1);
      CREATE TABLE shops (id bigserial PRIMARY KEY, name text NOT NULL, email text UNIQUE, region_id bigint REFERENCES regions);
      CREATE TABLE sales (id bigserial PRIMARY KEY, shop_id bigint REFERENCES shops);
      CREATE VIEW shop_names AS SELECT id, name FROM shops;
      CREATE FUNCTION public.shops_upper() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$;
      CREATE TRIGGER shops_upper BEFORE INSERT OR UPDATE ON shops FOR EACH ROW EXECUTE FUNCTION public.shops_upper();
      INSERT INTO shops (name, email, region_id) SELECT 'shop ' || g, 's' || g || '@example.com', 1 FROM generate_series(1, 50) g;
      INSERT INTO sales (shop_id) SELECT id FROM shops;
      GRANT SELECT, INSERT, UPDATE, DELETE ON shops TO ${app}; GRANT USAGE ON SEQUENCE shops_id_seq TO ${app};
      GRANT SELECT (id, name), UPDATE (name) ON shops TO ${clerk};`);
    const dir = await planDir({ 'rename-table-shops-stores.yaml': 'table: shops\nrename-table: { to: stores }\n' });

    // lint warns of what old code cannot do through the view, before and after the plan starts.
    const lint = await cli(dir, 'lint', '--no-json');
    expect(lint.code).toBe(0);
    expect(lint.stdout).toMatch(/warning: rename-table: .*renamed to stores.*COPY … FROM.*TRUNCATE.*ON CONFLICT ON CONSTRAINT.*LOCK TABLE/);

    const toSwitchRead = await cli(dir, 'apply', '--phase', 'switch-read');
    expect(toSwitchRead.errors).toBe('');
    expect(toSwitchRead.code).toBe(0);
    expect([await relkind('shops'), await relkind('stores')]).toEqual(['v', 'r']);
    // Everything that refers to the table by its oid followed it.
    expect(await db.sql(`SELECT pg_get_serial_sequence('stores', 'id') AS seq`)).toEqual([{ seq: 'public.shops_id_seq' }]);
    expect(await db.sql(`SELECT confrelid::regclass::text AS t FROM pg_constraint WHERE conrelid = 'sales'::regclass AND contype = 'f'`)).toEqual([
      { t: 'stores' },
    ]);
    expect(await db.sql(`SELECT confrelid::regclass::text AS t FROM pg_constraint WHERE conrelid = 'stores'::regclass AND contype = 'f'`)).toEqual([
      { t: 'regions' },
    ]);
    expect(await db.sql(`SELECT indexrelid::regclass::text AS i FROM pg_index WHERE indrelid = 'stores'::regclass ORDER BY 1`)).toEqual([
      { i: 'shops_email_key' },
      { i: 'shops_pkey' },
    ]);
    expect((await db.sql<{ d: string }>(`SELECT pg_get_viewdef('shop_names') AS d`))[0]!.d).toMatch(/FROM stores/);
    expect((await db.sql<{ d: string }>(`SELECT pg_get_viewdef('shops') AS d`))[0]!.d).toMatch(/FROM stores/);

    // The view: owned by the table's owner, with the table's grants (column grants too). Not security_invoker even on
    // 15 and later: such a view checks every column it selects against the caller, so the clerk could not use it.
    const [view] = await db.sql<{ owner: string; table_owner: string; options: string[] | null }>(
      `SELECT v.relowner::regrole::text AS owner, t.relowner::regrole::text AS table_owner, v.reloptions AS options
         FROM pg_class v, pg_class t WHERE v.oid = 'shops'::regclass AND t.oid = 'stores'::regclass`,
    );
    expect(view!.owner).toBe(view!.table_owner);
    expect(view!.options).toBeNull();
    expect(
      await db.sql(
        `SELECT has_table_privilege($1, 'shops', 'INSERT') AS app_insert, has_table_privilege($1, 'shops', 'TRUNCATE') AS app_truncate,
                has_column_privilege($2, 'shops', 'name', 'UPDATE') AS clerk_name, has_column_privilege($2, 'shops', 'email', 'SELECT') AS clerk_email`,
        [app, clerk],
      ),
    ).toEqual([{ app_insert: true, app_truncate: false, clerk_name: true, clerk_email: false }]);

    // Old code writes through the view (the table's trigger, default and unique index apply), new code the table.
    const appClient = await login(app);
    const old = await appClient.query<{ id: string; name: string }>(`INSERT INTO shops (name, email) VALUES ('old one', 'o@x') RETURNING id, name`);
    expect(old.rows[0]!.name).toBe('OLD ONE');
    await appClient.query(`INSERT INTO shops (name, email) VALUES ('again', 'o@x') ON CONFLICT (email) DO UPDATE SET name = 'upserted'`);
    await appClient.query(`UPDATE shops SET name = 'renamed' WHERE id = 1`);
    await appClient.query(`INSERT INTO stores (name, email) VALUES ('new one', 'n@x')`);
    expect(await db.sql(`SELECT name FROM stores WHERE email IN ('o@x', 'n@x') OR id = 1 ORDER BY id`)).toEqual([
      { name: 'RENAMED' },
      { name: 'UPSERTED' },
      { name: 'NEW ONE' },
    ]);
    const clerkClient = await login(clerk);
    await clerkClient.query(`UPDATE shops SET name = 'by clerk' WHERE id = 2`);
    await expect(clerkClient.query(`SELECT email FROM shops`)).rejects.toThrow(/permission denied/);
    // One of the limits lint names.
    await expect(appClient.query(`TRUNCATE shops`)).rejects.toThrow(/is not a table/);

    // plan show claims both relations for switch-read's rollback.
    const shown = await cli(dir, 'show', 'rename-table-shops-stores', '--phase', 'switch-read', '--no-json');
    expect(shown.stdout).toMatch(/locks ACCESS EXCLUSIVE on public\.stores, ACCESS EXCLUSIVE on public\.shops, taken first/);

    // Back: the view goes, the table has its name again, and so do what followed it.
    const back = await cli(dir, 'rollback', 'rename-table-shops-stores');
    expect(back.errors).toBe('');
    expect(back.code).toBe(0);
    expect([await relkind('shops'), await relkind('stores')]).toEqual(['r', null]);
    expect((await db.sql<{ d: string }>(`SELECT pg_get_viewdef('shop_names') AS d`))[0]!.d).toMatch(/FROM shops/);
    expect(await db.sql(`SELECT confrelid::regclass::text AS t FROM pg_constraint WHERE conrelid = 'sales'::regclass AND contype = 'f'`)).toEqual([
      { t: 'shops' },
    ]);
    await appClient.query(`INSERT INTO shops (name) VALUES ('after rollback')`);

    // Forward to contract in one run: the view is dropped, the table keeps every row.
    const contract = await cli(dir, 'apply', '--phase', 'contract');
    expect(contract.errors).toBe('');
    expect(contract.code).toBe(0);
    expect([await relkind('shops'), await relkind('stores')]).toEqual([null, 'r']);
    expect(await db.sql(`SELECT count(*)::int AS n FROM stores`)).toEqual([{ n: 53 }]);
    expect(await db.sql(`SELECT pg_get_serial_sequence('stores', 'id') AS seq`)).toEqual([{ seq: 'public.shops_id_seq' }]);
    await appClient.query(`INSERT INTO stores (name) VALUES ('after contract')`);
    // Contract's rollback makes the view again: old code's name works, and the plan is back at stop-write.
    const undone = await cli(dir, 'rollback', 'rename-table-shops-stores');
    expect(undone.errors).toBe('');
    expect(undone.code).toBe(0);
    expect([await relkind('shops'), await relkind('stores')]).toEqual(['v', 'r']);
    await appClient.query(`INSERT INTO shops (name) VALUES ('after contract rollback')`);
    expect(await db.sql(`SELECT count(*)::int AS n FROM stores`)).toEqual([{ n: 55 }]);
    const again = await cli(dir, 'apply', '--phase', 'contract');
    expect(again.code).toBe(0);
    expect([await relkind('shops'), await relkind('stores')]).toEqual([null, 'r']);
  });

  it('holds back a plan written for the new name until the rename is contracted, as one for the old name', async () => {
    await db.sql(
      `CREATE TABLE bins (id bigserial PRIMARY KEY, label text, legacy text); INSERT INTO bins (label) SELECT 'b' || g FROM generate_series(1, 20) g`,
    );
    const dir = await planDir({
      'a-rename-table-bins.yaml': 'table: bins\nrename-table: { to: boxes2 }\n',
      'b-drop-boxes2-legacy.yaml': 'table: boxes2\nafter: a-rename-table-bins\ndrop: { column: legacy }\n',
      'c-drop-bins-legacy.yaml': 'table: bins\ndrop: { column: legacy }\n',
    });
    const first = await cli(dir, 'apply', '--phase', 'switch-read', 'a-rename-table-bins');
    expect(first.code).toBe(0);
    // Named alone, without after:, a plan on the new name still waits: the table is the one in flight.
    const alone = await planDir({ 'b-drop-boxes2-legacy.yaml': 'table: boxes2\ndrop: { column: legacy }\n' });
    const copy = await runCli(['plan', 'apply', '--phase', 'next', '--no-json', '--dir', alone, '--database-url', db.url]);
    expect(copy.code).toBe(0);
    expect(copy.stdout).toContain('b-drop-boxes2-legacy: waiting behind a-rename-table-bins (at switch-read)');
    const status = await cli(dir, 'status', '--json');
    expect(status.lines[0]).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ plan: 'b-drop-boxes2-legacy', waiting: expect.objectContaining({ behind: 'a-rename-table-bins' }) }),
        expect.objectContaining({ plan: 'c-drop-bins-legacy', waiting: expect.objectContaining({ behind: 'a-rename-table-bins' }) }),
      ]),
    );
    const contract = await cli(dir, 'apply', '--phase', 'contract', 'a-rename-table-bins');
    expect(contract.code).toBe(0);
    const next = await cli(dir, 'apply', '--phase', 'expand', 'b-drop-boxes2-legacy');
    expect(next.errors).toBe('');
    expect(next.code).toBe(0);
    expect(await db.sql(`SELECT phase FROM pgshift.plans WHERE name = 'b-drop-boxes2-legacy'`)).toEqual([{ phase: 'expand' }]);
  });

  it('is refused up front when the runner may not create the view in the schema, naming the grant', async () => {
    const runner = `rt_runner_${db.name.replace(/^pgshift_/, '')}`;
    await db.sql(`CREATE ROLE ${runner} LOGIN PASSWORD 'pw' NOSUPERUSER; GRANT CREATE ON DATABASE ${db.name} TO ${runner}`);
    try {
      await db.sql(
        `CREATE SCHEMA shut; GRANT USAGE ON SCHEMA shut TO ${runner}; CREATE TABLE shut.crates (id bigserial PRIMARY KEY); ALTER TABLE shut.crates OWNER TO ${runner}`,
      );
      const dir = await planDir({ 'rename-table-crates.yaml': 'table: shut.crates\nrename-table: { to: boxes }\n' });
      const url = new URL(db.url);
      url.username = runner;
      url.password = 'pw';
      // A state schema of the runner's own: the one the other tests made is the superuser's.
      const args = ['plan', 'lint', '--dir', dir, '--database-url', url.toString(), '--schema', `${runner}_state`];
      const lint = await runCli(args);
      expect(lint.code).toBe(2);
      expect(lint.errors).toContain(
        `switch-read creates the view "crates" in schema "shut", which needs CREATE there: GRANT CREATE ON SCHEMA "shut" TO "${runner}"`,
      );
      await db.sql(`GRANT CREATE ON SCHEMA shut TO ${runner}`);
      expect(await runCli(args)).toMatchObject({ code: 0, errors: '' });
    } finally {
      await db.sql(`DROP SCHEMA shut CASCADE; REVOKE ALL ON DATABASE ${db.name} FROM ${runner}; DROP OWNED BY ${runner}; DROP ROLE ${runner}`);
    }
  });

  it('is refused up front when the new name is taken, changing nothing', async () => {
    await db.sql(`CREATE TABLE parcels (id bigserial PRIMARY KEY, code text); CREATE TYPE boxes AS (a int); CREATE VIEW crates AS SELECT 1 AS one`);
    for (const [to, what] of [
      ['boxes', 'a type'],
      ['crates', 'a view'],
    ]) {
      const dir = await planDir({ 'rename-table-parcels.yaml': `table: parcels\nrename-table: { to: ${to} }\n` });
      for (const verb of ['lint', 'apply']) {
        const result = await cli(dir, verb);
        expect(result.code, `${verb} ${to}`).toBe(2);
        expect(result.errors).toMatch(
          new RegExp(`rename-table-parcels\\.yaml(:\\d+)? rename-table\\.to: ${what} named "${to}" already exists in schema "public"`),
        );
      }
    }
    expect(await relkind('parcels')).toBe('r');
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.plans WHERE name = 'rename-table-parcels'`).catch(() => [{ n: 0 }])).toEqual([{ n: 0 }]);
  });

  it('keeps row-level security for the caller through the view from PostgreSQL 15, and refuses a table with it before', async () => {
    await db.sql(`
      CREATE TABLE notes (id bigserial PRIMARY KEY, author text NOT NULL DEFAULT current_user, body text);
      INSERT INTO notes (author, body) VALUES ('someone else', 'hidden'), ('${app}', 'mine');
      ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
      CREATE POLICY own ON notes USING (author = current_user);
      GRANT SELECT, INSERT ON notes TO ${app}; GRANT USAGE ON SEQUENCE notes_id_seq TO ${app};`);
    const dir = await planDir({ 'rename-table-notes.yaml': 'table: notes\nrename-table: { to: memos }\n' });
    if (major < 15) {
      const refused = await cli(dir, 'apply', '--phase', 'switch-read');
      expect(refused.code).toBe(2);
      expect(refused.errors).toMatch(/public\.notes has row-level security; before PostgreSQL 15 a view cannot be security_invoker/);
      expect(await relkind('notes')).toBe('r');
      return;
    }
    // From 15, unless a role has column grants too: then neither kind of view would be right.
    await db.sql(`GRANT SELECT (id) ON notes TO ${clerk}`);
    const both = await cli(dir, 'lint');
    expect(both.code).toBe(2);
    expect(both.errors).toMatch(/public\.notes has row-level security and column grants/);
    await db.sql(`REVOKE SELECT (id) ON notes FROM ${clerk}`);
    const applied = await cli(dir, 'apply', '--phase', 'switch-read');
    expect(applied.errors).toBe('');
    expect(await db.sql(`SELECT reloptions AS options FROM pg_class WHERE oid = 'notes'::regclass`)).toEqual([{ options: ['security_invoker=true'] }]);
    const appClient = await login(app);
    expect((await appClient.query(`SELECT body FROM notes`)).rows).toEqual([{ body: 'mine' }]);
    expect((await appClient.query(`SELECT body FROM memos`)).rows).toEqual([{ body: 'mine' }]);
  });
});
