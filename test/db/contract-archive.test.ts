import { beforeAll, describe, expect, it } from 'vitest';
import { apply, purge, rollback, show, status } from '../../src/index.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, planDir } from '../helpers/fixtures.js';

/**
 * contract archives the old columns (issue 20): rolled back after new code
 * wrote rows, every old value is right and nothing new code wrote is lost;
 * forward again works; `purge` and `contract.keep` drop the archive, after
 * which contract's rollback is refused.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

const columnsOf = async (table: string): Promise<string[]> =>
  (
    await db.sql<{ attname: string }>(`SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, [
      table,
    ])
  ).map((r) => r.attname);

describe('retype rolled back from contract', () => {
  it("refills the old column of rows new code wrote after contract, keeps untouched rows' archived values, rebuilds the index, and goes forward again", async () => {
    await db.sql(`
      CREATE TABLE prices (id bigserial PRIMARY KEY, price text NOT NULL, note text);
      CREATE INDEX prices_price_idx ON prices (price);
      INSERT INTO prices (price) SELECT g || '.5' FROM generate_series(1, 2000) g;`);
    // reverse gives '1.50' for what was written '1.5': lossy, so an untouched row must keep its archived text.
    const p = plan(`
plan: retype-prices
table: prices
retype: { column: price, to: "numeric(10,2)", using: "price::numeric(10,2)", reverse: "price::text" }
backfill: { batch_size: 300 }`);
    const run = { databaseUrl: db.url };
    expect((await apply([p], 'contract', run))[0]!.error).toBeUndefined();
    expect(await columnsOf('prices')).toEqual(['id', '_pgshift_retype-prices_price', 'note', 'price_new']);
    expect(await db.sql(`SELECT to_regclass('prices_price_idx') AS i`)).toEqual([{ i: null }]);

    // New code after contract: inserts, updates of the new column, an update of another column.
    await db.sql(`INSERT INTO prices (price_new, note) SELECT g + 0.25, 'new' FROM generate_series(1, 50) g`);
    await db.sql(`UPDATE prices SET price_new = price_new + 1 WHERE id % 7 = 0 AND id <= 2000`);
    await db.sql(`UPDATE prices SET note = 'touched' WHERE id % 11 = 0 AND id <= 2000`);
    const newSide = await db.sql(`SELECT id, price_new::text AS v, note FROM prices ORDER BY id`);

    const back = await rollback(p, 'contract', run);
    expect(back.error).toBeUndefined();
    expect(back.to).toBe('stop-write');
    expect(await columnsOf('prices')).toEqual(['id', 'price', 'note', 'price_new']);
    // Nothing new code wrote is lost.
    expect(await db.sql(`SELECT id, price_new::text AS v, note FROM prices ORDER BY id`)).toEqual(newSide);
    // Old values: written before contract and untouched → as written; changed or inserted after → reverse of the new value.
    const expected = (id: number): string => {
      if (id > 2000) return `${id - 2000}.25`;
      return id % 7 === 0 ? `${id + 1}.50` : `${id}.5`;
    };
    const rows = await db.sql<{ id: string; price: string }>(`SELECT id, price FROM prices ORDER BY id`);
    expect(rows.length).toBe(2050);
    expect(rows.filter((r) => r.price !== expected(Number(r.id)))).toEqual([]);
    expect(await db.sql(`SELECT indexdef FROM pg_indexes WHERE indexname = 'prices_price_idx'`)).toEqual([
      { indexdef: 'CREATE INDEX prices_price_idx ON public.prices USING btree (price)' },
    ]);
    // At stop-write again: the one-way trigger keeps the old column derived.
    await db.sql(`INSERT INTO prices (price_new) VALUES (7.75)`);
    expect(await db.sql(`SELECT price FROM prices WHERE price_new = 7.75`)).toEqual([{ price: '7.75' }]);
    const [st] = await status([p], run);
    expect(st).toMatchObject({ phase: 'stop-write', status: 'in_progress', archive: null });

    // Forward again to contract, and the archive is recorded again.
    const [again] = await apply([p], 'contract', run);
    expect(again!.error).toBeUndefined();
    const [done] = await status([p], run);
    expect(done).toMatchObject({ phase: 'contract', status: 'complete', archive: { columns: [{ column: 'price', archive: '_pgshift_retype-prices_price' }] } });
  });
});

describe('rename rolled back from contract', () => {
  it('gives the column and its plain index their names back, the copy its own, and refills rows written since', async () => {
    await db.sql(`
      CREATE TABLE members (id bigserial PRIMARY KEY, handle text);
      CREATE INDEX by_handle ON members (lower(handle));
      INSERT INTO members (handle) SELECT 'm' || g FROM generate_series(1, 500) g;`);
    const before = await db.sql(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'members' ORDER BY 1`);
    const p = plan(`plan: rename-members\ntable: members\nrename: { column: handle, to: nick }\n`);
    const run = { databaseUrl: db.url };
    expect((await apply([p], 'contract', run))[0]!.error).toBeUndefined();
    await db.sql(`INSERT INTO members (nick) VALUES ('after'); UPDATE members SET nick = 'renamed' WHERE id = 5`);
    expect((await rollback(p, 'contract', run)).error).toBeUndefined();
    expect(await db.sql(`SELECT handle, nick FROM members WHERE id IN (4, 5, 501) ORDER BY id`)).toEqual([
      { handle: 'm4', nick: 'm4' },
      { handle: 'renamed', nick: 'renamed' },
      { handle: 'after', nick: 'after' },
    ]);
    // The original index again, and the copy under the name it had before contract.
    expect(await db.sql(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'members' AND indexname = 'by_handle'`)).toEqual(
      before.filter((i) => (i as { indexname: string }).indexname === 'by_handle'),
    );
    expect(await db.sql(`SELECT to_regclass('by_nick_pgshift') IS NOT NULL AS copy`)).toEqual([{ copy: true }]);
    // And all the way back, to the table as it was.
    expect((await rollback(p, 'expand', run)).error).toBeUndefined();
    expect(await columnsOf('members')).toEqual(['id', 'handle']);
    expect(await db.sql(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'members' ORDER BY 1`)).toEqual(before);
  });

  it('is refused, naming them, when contract dropped constraints of the old column', async () => {
    await db.sql(`CREATE TABLE handles (id bigserial PRIMARY KEY, code text UNIQUE); INSERT INTO handles (code) VALUES ('a'), ('b')`);
    const dir = await planDir({ 'rename-handles.yaml': 'table: handles\nrename: { column: code, to: slug }\n' });
    const url = ['--dir', dir, '--database-url', db.url];
    expect((await runCli(['plan', 'apply', '--phase', 'contract', ...url])).code).toBe(0);
    const refused = await runCli(['plan', 'rollback', 'rename-handles', ...url]);
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/contract dropped handles_code_key with code's name, which its rollback does not build again, so it cannot be rolled back/);
    expect(await columnsOf('handles')).toEqual(['id', '_pgshift_rename-handles_code', 'slug']);
  });
});

describe('rollback of contract and objects planted since', () => {
  it("refuses (exit 2, nothing changed) when a function of the name it would create again is not the runner's", async () => {
    const role = `planter_${db.name.replace(/^pgshift_/, '')}`;
    await db.sql(`CREATE TABLE planted (id bigserial PRIMARY KEY, a text); INSERT INTO planted (a) VALUES ('x')`);
    const dir = await planDir({ 'rename-planted.yaml': 'table: planted\nrename: { column: a, to: b }\n' });
    const url = ['--dir', dir, '--database-url', db.url];
    expect((await runCli(['plan', 'apply', '--phase', 'contract', ...url])).code).toBe(0);
    await db.sql(`CREATE ROLE ${role} NOLOGIN`);
    try {
      await db.sql(
        `CREATE FUNCTION pgshift."rename-planted_fwd0"(a text) RETURNS text LANGUAGE sql AS 'SELECT a'; ALTER FUNCTION pgshift."rename-planted_fwd0"(text) OWNER TO ${role}`,
      );
      const refused = await runCli(['plan', 'rollback', 'rename-planted', ...url]);
      expect(refused.code).toBe(2);
      expect(refused.errors).toMatch(new RegExp(`function pgshift\\."rename-planted_fwd0"\\(text\\) exists and is owned by "${role}", not by the runner`));
      expect(await columnsOf('planted')).toEqual(['id', '_pgshift_rename-planted_a', 'b']);
    } finally {
      await db.sql(`DROP OWNED BY ${role} CASCADE; DROP ROLE ${role}`);
    }
  });
});

describe('purge and contract.keep', () => {
  const splitYaml = (name: string, table: string, keep?: string): string => `
plan: ${name}
table: ${table}
split:
  column: full_name
  into:
    - { name: first_name, type: text, using: "split_part(full_name, ' ', 1)" }
    - { name: last_name, type: text, using: "nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)" }
  reverse: "concat_ws(' ', first_name, last_name)"
${keep === undefined ? '' : `contract: { keep: ${keep} }`}`;

  it('keep: 0 drops the archive at contract; its rollback is then refused', async () => {
    await db.sql(`CREATE TABLE people0 (id bigserial PRIMARY KEY, full_name text); INSERT INTO people0 (full_name) VALUES ('Ada Lovelace')`);
    const p = plan(splitYaml('split-people0', 'people0', '0'));
    expect((await apply([p], 'contract', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    expect(await columnsOf('people0')).toEqual(['id', 'first_name', 'last_name']);
    const [st] = await status([p], { databaseUrl: db.url });
    expect(st!.archive).toMatchObject({ columns: [{ column: 'full_name', archive: '_pgshift_split-people0_full_name' }], purgedAt: expect.any(Date) });
    const back = await rollback(p, 'contract', { databaseUrl: db.url }).catch((error: unknown) => ({ error }));
    expect(String((back as { error: unknown }).error)).toMatch(/were dropped .* so contract cannot be rolled back/);
  });

  it('a keep not yet run out leaves the archive to apply; once past it (the recorded time moved back), the first apply drops it', async () => {
    await db.sql(`CREATE TABLE people7 (id bigserial PRIMARY KEY, full_name text); INSERT INTO people7 (full_name) VALUES ('Grace Hopper')`);
    const dir = await planDir({ 'split-people7.yaml': splitYaml('split-people7', 'people7') });
    const url = ['--dir', dir, '--database-url', db.url];
    expect((await runCli(['plan', 'apply', '--phase', 'contract', ...url])).code).toBe(0);
    const archived = ['id', '_pgshift_split-people7_full_name', 'first_name', 'last_name'];
    expect(await columnsOf('people7')).toEqual(archived);

    // status says what is archived and until when: the default keep, a week from contract.
    const st = await runCli(['plan', 'status', 'split-people7', '--json', ...url]);
    const [row] = st.lines[0] as unknown as { archive: { columns: unknown[]; until: string; purgedAt: string | null } }[];
    const [recorded] = await db.sql<{ at: Date }>(`SELECT archived_at AS at FROM pgshift.archives WHERE plan = 'split-people7'`);
    expect(new Date(row!.archive.until).getTime() - recorded!.at.getTime()).toBe(7 * 24 * 3600 * 1000);
    expect(row!.archive).toMatchObject({ columns: [{ column: 'full_name', archive: '_pgshift_split-people7_full_name' }], purgedAt: null });
    const human = await runCli(['plan', 'status', 'split-people7', '--no-json', ...url]);
    expect(human.stdout).toMatch(/split-people7: archived full_name as _pgshift_split-people7_full_name until \S+; the first apply after drops them/);

    // An apply before the keep runs out changes nothing.
    const early = await runCli(['plan', 'apply', '--phase', 'next', '--json', ...url]);
    expect(early.lines).toEqual([expect.not.objectContaining({ purged: expect.anything() })]);
    expect(await columnsOf('people7')).toEqual(archived);

    // Eight days later, by the state's clock.
    await db.sql(`UPDATE pgshift.archives SET archived_at = archived_at - interval '8 days' WHERE plan = 'split-people7'`);
    const due = await runCli(['plan', 'apply', '--phase', 'next', '--json', ...url]);
    expect(due.code).toBe(0);
    expect(due.lines).toEqual([
      expect.objectContaining({ plan: 'split-people7', purged: [{ column: 'full_name', archive: '_pgshift_split-people7_full_name' }] }),
    ]);
    expect(await columnsOf('people7')).toEqual(['id', 'first_name', 'last_name']);
    const refused = await runCli(['plan', 'rollback', 'split-people7', ...url]);
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/contract cannot be rolled back/);
  });

  it('purge drops the archive at once; purge of a plan that archived nothing is refused (exit 2)', async () => {
    await db.sql(`CREATE TABLE peoplep (id bigserial PRIMARY KEY, full_name text); INSERT INTO peoplep (full_name) VALUES ('Alan Turing')`);
    const p = plan(splitYaml('split-peoplep', 'peoplep'));
    const dir = await planDir({ 'split-peoplep.yaml': splitYaml('split-peoplep', 'peoplep') });
    const url = ['--dir', dir, '--database-url', db.url];
    expect((await apply([p], 'stop-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const early = await runCli(['plan', 'purge', 'split-peoplep', ...url]);
    expect(early.code).toBe(2);
    expect(early.errors).toMatch(/plan "split-peoplep" has nothing archived \(it is at stop-write\)/);

    // plan show claims the locks of the archive, of its rollback and of the purge.
    const [shown] = await show(p, 'contract', { databaseUrl: db.url });
    expect(shown!.apply.filter((s) => s.kind === 'sql').map((s) => s.kind === 'sql' && s.lock)).toEqual(['ACCESS EXCLUSIVE', 'none']);
    expect(shown!.purge).toEqual([
      expect.objectContaining({
        lock: 'ACCESS EXCLUSIVE',
        statements: ['ALTER TABLE "public"."peoplep" DROP COLUMN IF EXISTS "_pgshift_split-peoplep_full_name"'],
      }),
    ]);

    expect((await apply([p], 'contract', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    expect((await purge(p, { databaseUrl: db.url })).purged).toEqual([{ column: 'full_name', archive: '_pgshift_split-peoplep_full_name' }]);
    expect(await columnsOf('peoplep')).toEqual(['id', 'first_name', 'last_name']);
    expect((await purge(p, { databaseUrl: db.url })).purged).toEqual([]);
  });

  it('refuses contract (exit 2, nothing changed) when the archive name is already a column', async () => {
    await db.sql(`CREATE TABLE peoplec (id bigserial PRIMARY KEY, full_name text, "_pgshift_split-peoplec_full_name" int)`);
    const dir = await planDir({ 'split-peoplec.yaml': splitYaml('split-peoplec', 'peoplec') });
    const url = ['--dir', dir, '--database-url', db.url];
    const refused = await runCli(['plan', 'apply', '--phase', 'contract', ...url]);
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/column "_pgshift_split-peoplec_full_name" of public\.peoplec exists, the name contract archives "full_name" under/);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.plans WHERE name = 'split-peoplec'`)).toEqual([{ n: 0 }]);
  });
});
