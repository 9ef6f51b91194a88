import { beforeAll, describe, expect, it } from 'vitest';
import { apply, lint, PlanError, rollback, type Phase } from '../../src/index.js';
import { describeDatabase } from '../helpers/catalog.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, planDir } from '../helpers/fixtures.js';

/**
 * Partitioned tables: a list-partitioned table with two leaf partitions and
 * a sub-partitioned one (two leaves below it), primary key (id, region).
 * A split declaring NOT NULL and UNIQUE on a new column, and the rename of
 * an indexed column, each go through all six phases and back, with writes
 * from the code versions that may run at each phase, row-moving UPDATEs
 * (region changes) included: every write succeeds and reads back as written.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  // PostgreSQL 14 still lets PUBLIC create in schema public (15+ does not), which lint warns about: make both alike.
  await db.sql(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
});

const PARTITIONS = (t: string): string => `
  CREATE TABLE ${t}_eu PARTITION OF ${t} FOR VALUES IN ('eu');
  CREATE TABLE ${t}_us PARTITION OF ${t} FOR VALUES IN ('us');
  CREATE TABLE ${t}_ap PARTITION OF ${t} FOR VALUES IN ('as', 'oc') PARTITION BY LIST (region);
  CREATE TABLE ${t}_ap_as PARTITION OF ${t}_ap FOR VALUES IN ('as');
  CREATE TABLE ${t}_ap_oc PARTITION OF ${t}_ap FOR VALUES IN ('oc');`;
const LEAVES = ['eu', 'us', 'ap_as', 'ap_oc'];
const REGIONS = ['eu', 'us', 'as', 'oc'];

const GUARDS = '{ lock_timeout: 1s, statement_timeout: 20s, retries: 2 }';

async function applyTo(p: ReturnType<typeof plan>, phase: Phase): Promise<void> {
  const [outcome] = await apply([p], phase, { databaseUrl: db.url });
  expect(outcome!.error).toBeUndefined();
}

async function rollbackTo(p: ReturnType<typeof plan>, phase: Phase): Promise<void> {
  const outcome = await rollback(p, phase, { databaseUrl: db.url });
  expect(outcome.error).toBeUndefined();
}

/** Indexes of `table` and its partitions whose name matches `like`, with validity and the index each is attached to. */
async function indexTree(like: string): Promise<{ index: string; table: string; valid: boolean; parent: string | null }[]> {
  return db.sql(
    `SELECT c.relname AS index, i.indrelid::regclass::text AS table, i.indisvalid AS valid,
            (SELECT h.inhparent::regclass::text FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) AS parent
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE c.relname LIKE $1 ORDER BY 2, 1`,
    [like],
  );
}

describe('split with not_null and unique on a partitioned table', () => {
  const T = 'people';
  const yaml = (unique: string): string => `
plan: split-people
table: ${T}
split:
  column: full_name
  into:
    - name: first_name
      type: text
      using: split_part(full_name, ' ', 1)
      not_null: true
      unique: ${unique}
    - name: last_name
      type: text
      using: nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)
  reverse: concat_ws(' ', first_name, last_name)
backfill: { batch_size: 50, pause: 0ms }
guards: ${GUARDS}`;
  const p = plan(yaml('{ with: [region] }'));

  /** What each row must read back: full name and region. */
  const ledger = new Map<number, { full: string; region: string }>();
  let next = 10_000;
  const region = (i: number): string => REGIONS[i % REGIONS.length]!;

  beforeAll(async () => {
    await db.sql(`
      CREATE TABLE ${T} (id bigint NOT NULL, region text NOT NULL, full_name text NOT NULL DEFAULT 'anonymous',
                         PRIMARY KEY (id, region)) PARTITION BY LIST (region);
      ${PARTITIONS(T)}
      INSERT INTO ${T} (id, region, full_name) SELECT g, (ARRAY['eu','us','as','oc'])[1 + g % 4], 'First' || g || ' Last' || g FROM generate_series(1, 400) g;`);
    for (let g = 1; g <= 400; g++) ledger.set(g, { full: `First${g} Last${g}`, region: REGIONS[g % 4]! });
  });

  /** Old code: insert, update, and an update that moves the row to another partition (and one changing the name too). */
  async function oldCodeWrites(): Promise<void> {
    const id = next++;
    await db.sql(`INSERT INTO ${T} (id, region, full_name) VALUES ($1, $2, $3)`, [id, region(id), `Old${id} Ins${id}`]);
    await db.sql(`UPDATE ${T} SET full_name = $2 WHERE id = $1`, [id, `Old${id} Upd${id}`]);
    await db.sql(`UPDATE ${T} SET region = $2 WHERE id = $1`, [id, region(id + 1)]);
    ledger.set(id, { full: `Old${id} Upd${id}`, region: region(id + 1) });
    const seeded = 1 + (id % 400);
    await db.sql(`UPDATE ${T} SET region = $2, full_name = $3 WHERE id = $1`, [seeded, region(id + 2), `Moved${id} Old${seeded}`]);
    ledger.set(seeded, { full: `Moved${id} Old${seeded}`, region: region(id + 2) });
  }

  /** New code: writes first_name/last_name only, moves rows too. */
  async function newCodeWrites(): Promise<void> {
    const id = next++;
    await db.sql(`INSERT INTO ${T} (id, region, first_name, last_name) VALUES ($1, $2, $3, $4)`, [id, region(id), `New${id}`, `Ins${id}`]);
    await db.sql(`UPDATE ${T} SET last_name = $2 WHERE id = $1`, [id, `Upd${id}`]);
    await db.sql(`UPDATE ${T} SET region = $2 WHERE id = $1`, [id, region(id + 1)]);
    ledger.set(id, { full: `New${id} Upd${id}`, region: region(id + 1) });
    // A row move that also changes the new columns: the destination partition must keep what new code wrote.
    const seeded = 1 + ((id * 7) % 400);
    await db.sql(`UPDATE ${T} SET region = $2, first_name = $3, last_name = $4 WHERE id = $1`, [seeded, region(id + 3), `Anna${id}`, `Lena${id} Berg`]);
    ledger.set(seeded, { full: `Anna${id} Lena${id} Berg`, region: region(id + 3) });
  }

  /** Every acknowledged write, through the old column (while it exists) and the new ones (once kept in sync). */
  async function check(sides: { old: boolean; new: boolean }): Promise<void> {
    const rows = await db.sql<{ id: string; region: string; full_name?: string; first_name?: string; last_name?: string | null }>(`SELECT * FROM ${T}`);
    expect(rows).toHaveLength(ledger.size);
    const wrong: unknown[] = [];
    for (const r of rows) {
      const want = ledger.get(Number(r.id));
      if (!want || want.region !== r.region) wrong.push({ row: r, want });
      else if (sides.old && r.full_name !== want.full) wrong.push({ row: r, want });
      else if (sides.new && [r.first_name, r.last_name].filter((x) => x != null).join(' ') !== want.full) wrong.push({ row: r, want });
    }
    expect(wrong).toEqual([]);
  }

  it('refuses unique on the new column alone up front, with advice that works, and changes nothing', async () => {
    const before = await describeDatabase(db);
    const [outcome] = await apply([plan(yaml('true'))], 'expand', { databaseUrl: db.url });
    expect(outcome!.error).toBeInstanceOf(PlanError);
    expect(outcome!.error!.message).toMatch(
      /split\.into\[0\]\.unique: "first_name" cannot be unique on its own: public\.people is partitioned by \(region\).*Write "unique: \{ with: \[region\] \}"/,
    );
    // lint says the same, with exit 2.
    const dir = await planDir({ 'split-people.yaml': yaml('true') });
    const cli = await runCli(['plan', 'lint', '--dir', dir, '--database-url', db.url, '--json']);
    expect(cli.code).toBe(2);
    expect(cli.errors).toMatch(/cannot be unique on its own/);
    expect(await describeDatabase(db)).toEqual(before);
    // The advised plan passes lint.
    expect(await lint([p], { databaseUrl: db.url })).toEqual([{ plan: 'split-people', outcome: 'checked', warnings: [] }]);
  });

  it('goes through all six phases and back with old- and new-code writes, row moves included', async () => {
    for (const phase of ['expand', 'dual-write', 'backfill'] as const) {
      await applyTo(p, phase);
      await oldCodeWrites();
      await check({ old: true, new: phase === 'backfill' });
    }
    await applyTo(p, 'switch-read');
    // NOT NULL on the table and every partition; the unique constraint valid and attached everywhere.
    const notNull = await db.sql<{ t: string; nn: boolean }>(
      `SELECT attrelid::regclass::text AS t, attnotnull AS nn FROM pg_attribute WHERE attname = 'first_name' AND attrelid::regclass::text LIKE '${T}%' AND (SELECT relkind FROM pg_class WHERE oid = attrelid) IN ('r', 'p') ORDER BY 1`,
    );
    expect(notNull).toHaveLength(1 + 5);
    expect(notNull.every((r) => r.nn)).toBe(true);
    const tree = await indexTree('%first_name_pgshift_uq%');
    expect(tree).toHaveLength(1 + 5);
    expect(tree.every((i) => i.valid)).toBe(true);
    expect(tree.filter((i) => i.parent === null).map((i) => i.table)).toEqual([T]);
    await expect(db.sql(`INSERT INTO ${T} (id, region, full_name) VALUES (99999, 'eu', 'First4 Dup')`)).rejects.toThrow(/duplicate key/);
    await oldCodeWrites();
    await newCodeWrites();
    await check({ old: true, new: true });

    await applyTo(p, 'stop-write');
    await newCodeWrites();
    await check({ old: true, new: true });

    // And back to nothing, writes at every step (rolling back X undoes X).
    await rollbackTo(p, 'stop-write');
    await newCodeWrites();
    await oldCodeWrites();
    await check({ old: true, new: true });
    for (const phase of ['switch-read', 'backfill', 'dual-write', 'expand'] as const) {
      await rollbackTo(p, phase);
      await oldCodeWrites();
      await check({ old: true, new: phase === 'switch-read' || phase === 'backfill' });
      if (phase === 'switch-read') {
        expect(await indexTree('%pgshift%')).toEqual([]);
        expect(await db.sql(`SELECT 1 FROM pg_attribute WHERE attname = 'first_name' AND attnotnull`)).toEqual([]);
      }
    }

    // Forward again, to the end.
    await applyTo(p, 'switch-read');
    await newCodeWrites();
    await oldCodeWrites();
    await applyTo(p, 'contract');
    await newCodeWrites();
    await check({ old: false, new: true });
    const after = await indexTree('%first_name_pgshift_uq%');
    expect(after).toHaveLength(1 + 5);
    expect(after.every((i) => i.valid)).toBe(true);
    const leaves = after.filter((i) => LEAVES.some((l) => i.table === `${T}_${l}`));
    expect(leaves).toHaveLength(4);
    expect(await db.sql(`SELECT conname FROM pg_constraint WHERE conrelid = '${T}'::regclass AND contype = 'u'`)).toEqual([
      { conname: 'people_first_name_pgshift_uq' },
    ]);
  });
});

describe('rename of an indexed column of a partitioned table', () => {
  const SCHEMA = (s: string): string => `
    CREATE SCHEMA IF NOT EXISTS ${s};
    SET search_path = ${s};
    CREATE TABLE members (id bigint NOT NULL, region text NOT NULL, nick text NOT NULL CHECK (length(nick) > 0),
                          PRIMARY KEY (id, region), CONSTRAINT members_nick_region_key UNIQUE (nick, region)) PARTITION BY LIST (region);
    ${PARTITIONS('members')}
    CREATE INDEX members_nick_idx ON members (nick);
    CREATE UNIQUE INDEX members_lower_nick_idx ON members (lower(nick), region) WHERE nick <> 'x';
    INSERT INTO members SELECT g, (ARRAY['eu','us','as','oc'])[1 + g % 4], 'nick' || g FROM generate_series(1, 300) g;
    SET search_path = "$user", public;`;
  /** What a plain RENAME COLUMN leaves, with the names pgshift gives (the old column name replaced by the new one). */
  const PLAIN_RENAME = `
    ALTER TABLE plain.members RENAME COLUMN nick TO handle;
    ALTER TABLE plain.members RENAME CONSTRAINT members_nick_check TO members_handle_check;
    DO $$ DECLARE r record; BEGIN
      FOR r IN SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'plain'::regnamespace AND c.relkind IN ('i', 'I') AND c.relname LIKE '%nick%' LOOP
        EXECUTE format('ALTER INDEX plain.%I RENAME TO %I', r.relname, replace(r.relname, 'nick', 'handle'));
      END LOOP;
    END $$;`;
  const p = plan(`
plan: rename-members-nick
table: members
rename: { column: nick, to: handle }
backfill: { batch_size: 40, pause: 0ms }
guards: ${GUARDS}`);
  const ledger = new Map<number, { nick: string; region: string }>();
  let next = 20_000;
  const region = (i: number): string => REGIONS[i % REGIONS.length]!;

  beforeAll(async () => {
    await db.sql(SCHEMA('public'));
    await db.sql(SCHEMA('plain'));
    for (let g = 1; g <= 300; g++) ledger.set(g, { nick: `nick${g}`, region: REGIONS[g % 4]! });
  });

  async function writes(column: 'nick' | 'handle'): Promise<void> {
    const id = next++;
    await db.sql(`INSERT INTO members (id, region, ${column}) VALUES ($1, $2, $3)`, [id, region(id), `${column}-ins-${id}`]);
    await db.sql(`UPDATE members SET ${column} = $2 WHERE id = $1`, [id, `${column}-upd-${id}`]);
    await db.sql(`UPDATE members SET region = $2 WHERE id = $1`, [id, region(id + 1)]);
    ledger.set(id, { nick: `${column}-upd-${id}`, region: region(id + 1) });
    const seeded = 1 + ((id * 13) % 300);
    await db.sql(`UPDATE members SET region = $2, ${column} = $3 WHERE id = $1`, [seeded, region(id + 2), `${column}-moved-${id}`]);
    ledger.set(seeded, { nick: `${column}-moved-${id}`, region: region(id + 2) });
  }

  async function check(sides: { old: boolean; new: boolean }): Promise<void> {
    const rows = await db.sql<{ id: string; region: string; nick?: string; handle?: string }>(`SELECT * FROM members`);
    expect(rows).toHaveLength(ledger.size);
    const wrong = rows.filter((r) => {
      const want = ledger.get(Number(r.id));
      return !want || want.region !== r.region || (sides.old && r.nick !== want.nick) || (sides.new && r.handle !== want.nick);
    });
    expect(wrong).toEqual([]);
  }

  /** Indexes and UNIQUE/CHECK constraints of members and its partitions in `schema`, unqualified. */
  async function catalogOf(schema: string): Promise<unknown> {
    const indexes = await db.sql<{ def: string }>(
      `SELECT c.relname AS name, t.relname AS table, i.indisvalid AS valid,
              (SELECT p.relname FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent WHERE h.inhrelid = i.indexrelid) AS parent,
              pg_get_indexdef(i.indexrelid) AS def
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
        WHERE t.relnamespace = $1::regnamespace AND t.relname LIKE 'members%' ORDER BY 2, 1`,
      [schema],
    );
    const constraints = await db.sql(
      `SELECT k.conname AS name, t.relname AS table, pg_get_constraintdef(k.oid) AS def, k.convalidated AS valid
         FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
        WHERE t.relnamespace = $1::regnamespace AND t.relname LIKE 'members%' AND k.contype IN ('u', 'c') ORDER BY 2, 1`,
      [schema],
    );
    return { indexes: indexes.map((r) => ({ ...r, def: r.def.replaceAll(`${schema}.`, '') })), constraints };
  }

  it('goes through all six phases and back with old- and new-code writes, row moves included, and ends as a plain RENAME COLUMN', async () => {
    for (const phase of ['expand', 'dual-write', 'backfill'] as const) {
      await applyTo(p, phase);
      await writes('nick');
      await check({ old: true, new: phase === 'backfill' });
    }
    await applyTo(p, 'switch-read');
    // Each copy valid on the table, attached on every partition.
    const copies = await indexTree('%pgshift');
    expect(copies).toHaveLength(3 * (1 + 5));
    expect(copies.filter((c) => !c.valid)).toEqual([]);
    expect(copies.filter((c) => c.parent === null).map((c) => c.index)).toEqual([
      'members_handle_idx_pgshift',
      'members_handle_region_key_pgshift',
      'members_lower_nick_idx_pgshift'.replace('nick', 'handle'),
    ]);
    await writes('nick');
    await writes('handle');
    await check({ old: true, new: true });
    await applyTo(p, 'stop-write');
    await writes('handle');
    await check({ old: true, new: true });

    await rollbackTo(p, 'stop-write');
    await writes('handle');
    await writes('nick');
    for (const phase of ['switch-read', 'backfill', 'dual-write', 'expand'] as const) {
      await rollbackTo(p, phase);
      await writes('nick');
      await check({ old: true, new: phase === 'switch-read' || phase === 'backfill' });
      if (phase === 'switch-read') expect(await indexTree('members%pgshift%')).toEqual([]);
    }

    await applyTo(p, 'switch-read');
    await writes('handle');
    await writes('nick');
    await applyTo(p, 'contract');
    await writes('handle');
    await check({ old: false, new: true });

    await db.sql(PLAIN_RENAME);
    const ours = await catalogOf('public');
    expect(ours).toEqual(await catalogOf('plain'));
    const idx = (ours as { indexes: { name: string; valid: boolean; parent: string | null }[] }).indexes;
    expect(idx.filter((i) => i.name.includes('handle') && i.parent === null).map((i) => i.name)).toEqual([
      'members_handle_idx',
      'members_handle_region_key',
      'members_lower_handle_idx',
    ]);
    expect(idx.every((i) => i.valid)).toBe(true);
    await expect(db.sql(`INSERT INTO members (id, region, handle) VALUES (1, 'us', 'again')`)).rejects.toThrow(/duplicate key/);
  });
});

describe('refusals on a partitioned table', () => {
  it('refuses what cannot be carried or built, with advice, and changes nothing', async () => {
    await db.sql(`
      CREATE TABLE accounts (code text PRIMARY KEY);
      CREATE TABLE items (id bigint NOT NULL, region text NOT NULL, sku text NOT NULL, label text,
                          PRIMARY KEY (id, region)) PARTITION BY LIST (region);
      ${PARTITIONS('items')}
      CREATE INDEX items_eu_sku_local ON items_eu (sku);
      ALTER TABLE items_us ADD CONSTRAINT items_us_sku_check CHECK (sku <> '');
      CREATE TABLE tagged (id bigint NOT NULL, region text NOT NULL, code text REFERENCES accounts,
                           PRIMARY KEY (id, region)) PARTITION BY LIST (region);
      ${PARTITIONS('tagged')}`);
    // The pgshift schema is made on first use, by whichever test runs first: compare the rest.
    const userObjects = async (): Promise<unknown[]> => (await describeDatabase(db)).filter((r) => (r as { nspname: string }).nspname !== 'pgshift');
    const before = await userObjects();
    const refusal = async (yaml: string): Promise<string> => {
      const [outcome] = await apply([plan(yaml)], 'expand', { databaseUrl: db.url });
      expect(outcome!.error).toBeInstanceOf(PlanError);
      return outcome!.error!.message;
    };
    const local = await refusal(`
plan: rename-items-sku
table: items
rename: { column: sku, to: code }`);
    expect(local).toMatch(
      /column "sku" is used by index items_eu_sku_local on partition items_eu, which the partition has on its own.*DROP INDEX CONCURRENTLY/,
    );
    expect(local).toMatch(/column "sku" is used by constraint items_us_sku_check on partition items_us/);
    // A partition key column cannot be dropped, so contract could never finish.
    expect(
      await refusal(`
plan: rename-items-region
table: items
rename: { column: region, to: area }`),
    ).toMatch(/column "region" is in the partition key of public\.items/);
    // "with" must name a column that stays.
    expect(
      await refusal(`
plan: split-items-label
table: items
split:
  column: label
  into:
    - { name: a, type: text, using: "label", unique: { with: [nope] } }
    - { name: b, type: text, using: "label" }
  reverse: a`),
    ).toMatch(/"with" names column "nope", which does not exist in public\.items/);
    // A retype's new column too.
    expect(
      await refusal(`
plan: retype-items-label
table: items
retype: { column: label, to: varchar(20), using: "label::varchar(20)", reverse: "label_new::text", unique: true }`),
    ).toMatch(/retype\.unique: "label_new" cannot be unique on its own: public\.items is partitioned by \(region\)/);
    const [{ v }] = (await db.sql<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`)) as [{ v: number }];
    const fkPlan = plan(`
plan: rename-tagged-code
table: tagged
rename: { column: code, to: account }
guards: ${GUARDS}`);
    if (v < 180000) {
      // Before 18 a foreign key cannot be added NOT VALID on a partitioned table: refused.
      const [outcome] = await apply([fkPlan], 'expand', { databaseUrl: db.url });
      expect(outcome!.error?.message).toMatch(/PostgreSQL before 18 cannot add a foreign key NOT VALID on a partitioned table/);
    }
    expect(await userObjects()).toEqual(before);
    if (v >= 180000) {
      // From 18 on it is carried: added NOT VALID, validated, and enforced after contract.
      await db.sql(`INSERT INTO accounts VALUES ('a1'); INSERT INTO tagged VALUES (1, 'eu', 'a1')`);
      await applyTo(fkPlan, 'contract');
      await expect(db.sql(`INSERT INTO tagged (id, region, account) VALUES (2, 'us', 'nobody')`)).rejects.toThrow(/tagged_code_fkey|foreign key/);
      await db.sql(`UPDATE tagged SET region = 'us' WHERE id = 1`);
    }
  });
});

describe('an interrupted build on a partitioned table', () => {
  it('fails in switch-read naming the partition, rolls back to nothing left, and a retry goes through once the data is fixed', async () => {
    await db.sql(`
      CREATE TABLE tags (id bigint NOT NULL, region text NOT NULL, full_name text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
      ${PARTITIONS('tags')}
      INSERT INTO tags SELECT g, (ARRAY['eu','us','as','oc'])[1 + g % 4], 'Tag' || g || ' X' FROM generate_series(1, 100) g;
      -- Two rows of one partition share a first word: the unique build on tags_us fails.
      INSERT INTO tags VALUES (1001, 'us', 'Tag1 Y'), (1005, 'us', 'Tag1 Z');`);
    const p = plan(`
plan: split-tags
table: tags
split:
  column: full_name
  into:
    - { name: word, type: text, using: "split_part(full_name, ' ', 1)", unique: { with: [region] } }
    - { name: rest, type: text, using: "nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)" }
  reverse: concat_ws(' ', word, rest)
guards: ${GUARDS}`);
    await applyTo(p, 'backfill');
    const [failed] = await apply([p], 'switch-read', { databaseUrl: db.url });
    expect(failed!.error?.message).toMatch(/on partition public\.tags_us.*could not create unique index "tags_us_word_pgshift_uq"/s);
    // Part of it was built: the constraint ON ONLY, some partitions' indexes, an INVALID one on tags_us.
    expect((await indexTree('tags%pgshift%')).length).toBeGreaterThan(1);
    await rollbackTo(p, 'switch-read');
    expect(await indexTree('tags%pgshift%')).toEqual([]);
    expect(await db.sql(`SELECT conname FROM pg_constraint WHERE conname LIKE 'tags%pgshift%'`)).toEqual([]);
    // Half-applied again, then fixed, and retried forward: the INVALID leftover on tags_us is dropped and built again.
    const [again] = await apply([p], 'switch-read', { databaseUrl: db.url });
    expect(again!.error?.message).toMatch(/tags_us_word_pgshift_uq/);
    expect((await indexTree('tags_us%pgshift%')).map((i) => i.valid)).toEqual([false]);
    await db.sql(`UPDATE tags SET full_name = 'Other' || id || ' Z' WHERE id > 1000`);
    await applyTo(p, 'contract');
    const tree = await indexTree('tags%pgshift%');
    expect(tree).toHaveLength(1 + 5);
    expect(tree.every((i) => i.valid)).toBe(true);
  });
});

describe('a partition added after the plan started', () => {
  it('stops switch-read naming it and how to finish; done by hand, apply goes on', async () => {
    await db.sql(`
      CREATE TABLE notes (id bigint NOT NULL, region text NOT NULL, full_name text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
      ${PARTITIONS('notes')}
      INSERT INTO notes SELECT g, (ARRAY['eu','us','as','oc'])[1 + g % 4], 'Note' || g || ' X' FROM generate_series(1, 40) g;`);
    const p = plan(`
plan: split-notes
table: notes
split:
  column: full_name
  into:
    - { name: word, type: text, using: "split_part(full_name, ' ', 1)", unique: { with: [region] } }
    - { name: rest, type: text, using: "nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)" }
  reverse: concat_ws(' ', word, rest)
guards: ${GUARDS}`);
    await applyTo(p, 'backfill');
    await db.sql(`CREATE TABLE notes_sa PARTITION OF notes FOR VALUES IN ('sa'); INSERT INTO notes VALUES (500, 'sa', 'South X')`);
    const [stopped] = await apply([p], 'switch-read', { databaseUrl: db.url });
    expect(stopped!.error?.message).toMatch(
      /no index is attached for partition\(s\) notes_sa .*CREATE UNIQUE INDEX CONCURRENTLY <name> ON <partition> \("word", "region"\)/,
    );
    await db.sql(`CREATE UNIQUE INDEX CONCURRENTLY notes_sa_word ON notes_sa (word, region)`);
    await db.sql(`ALTER TABLE notes_sa ADD CONSTRAINT notes_sa_word UNIQUE USING INDEX notes_sa_word`);
    await db.sql(`ALTER INDEX notes_word_pgshift_uq ATTACH PARTITION notes_sa_word`);
    await applyTo(p, 'contract');
    expect((await indexTree('notes%word%')).every((i) => i.valid)).toBe(true);
    await expect(db.sql(`INSERT INTO notes (id, region, word, rest) VALUES (501, 'sa', 'South', 'Y')`)).rejects.toThrow(/duplicate key/);
  });
});
