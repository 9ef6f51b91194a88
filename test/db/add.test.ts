import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PHASES, type Phase } from '../../src/phases/phases.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir } from '../helpers/fixtures.js';

/** The `add` kind beyond the lifecycle table (test/db/roles.test.ts): what lint refuses, volatile and looked-up values, every rollback. */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.client.end().catch(() => undefined);
});

const cli = (dir: string, ...args: string[]) => runCli(['plan', ...args, '--dir', dir, '--database-url', db.url, '--json']);
const GUARDS = 'backfill: { batch_size: 40, pause: 0ms }\nguards: { lock_timeout: 2s, statement_timeout: 20s }';

async function columns(table: string): Promise<string[]> {
  const rows = await db.sql<{ attname: string }>(
    `SELECT attname FROM pg_attribute WHERE attrelid = '${table}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
  );
  return rows.map((r) => r.attname);
}

describe('add', () => {
  it('is refused up front for a value of another type, a default that reads the row, and a column that exists, changing nothing', async () => {
    await db.sql(`CREATE TABLE parcels (id bigserial PRIMARY KEY, weight int NOT NULL DEFAULT 1, note text)`);
    await db.sql(`CREATE TABLE crates (id bigserial PRIMARY KEY, note text)`);
    // Plans on one table are checked in their turn: one table each.
    const dir = await planDir({
      'add-parcels-sent.yaml': `table: parcels\nadd: { column: sent_on, type: date, value: "weight * 2" }\n`,
      'add-crates-note.yaml': `table: crates\nadd: { column: note, type: text, value: "'x'" }\n`,
    });
    for (const verb of ['lint', 'apply']) {
      const result = await cli(dir, verb);
      expect(result.code, verb).toBe(2);
      expect(result.errors).toMatch(/add-parcels-sent\.yaml(:\d+)? add\.value: does not compile: cannot cast type integer to date/);
      expect(result.errors).toMatch(/add-crates-note\.yaml(:\d+)? add\.column: column "note" already exists in public\.crates/);
    }
    const dir2 = await planDir({
      'add-parcels-sent.yaml': `table: parcels\nadd: { column: heavy, type: boolean, value: "weight > 10", default: "weight > 5" }\n`,
    });
    const refused = await cli(dir2, 'apply');
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/add\.default: is not a valid default for "heavy": .*column/i);
    expect(await columns('parcels')).toEqual(['id', 'weight', 'note']);
    expect(await columns('crates')).toEqual(['id', 'note']);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.plans`).catch(() => [{ n: 0 }])).toEqual([{ n: 0 }]);
  });

  it('gives a volatile value once: old code inserts get a fresh one, the backfill fills only NULLs, and UNIQUE NOT NULL comes at switch-read', async () => {
    await db.sql(`CREATE TABLE tokens (id bigserial PRIMARY KEY, note text); INSERT INTO tokens (note) SELECT 'seed' FROM generate_series(1, 300)`);
    const plan = 'add-tokens-public-id';
    const dir = await planDir({
      [`${plan}.yaml`]: `table: tokens\nadd: { column: public_id, type: uuid, not_null: true, unique: true, value: "gen_random_uuid()" }\n${GUARDS}\n`,
    });
    const oldInsert = () => db.sql(`INSERT INTO tokens (note) VALUES ('old code')`);
    const apply = async (phase: Phase) => {
      const r = await cli(dir, 'apply', plan, '--phase', phase);
      expect(r.errors, phase).toBe('');
      expect(r.code, phase).toBe(0);
    };
    const rollback = async (phase: Phase) => {
      const r = await cli(dir, 'rollback', plan, '--phase', phase);
      expect(r.errors, `rollback ${phase}`).toBe('');
      expect(r.code, `rollback ${phase}`).toBe(0);
    };

    await apply('dual-write');
    await oldInsert();
    expect(await db.sql(`SELECT count(*)::int AS n FROM tokens WHERE note = 'old code' AND public_id IS NOT NULL`)).toEqual([{ n: 1 }]);
    await apply('backfill');
    const filled = await db.sql<{ id: string; public_id: string }>(`SELECT id, public_id FROM tokens ORDER BY id`);
    expect(filled.filter((r) => r.public_id === null)).toEqual([]);
    expect(new Set(filled.map((r) => r.public_id)).size).toBe(filled.length);
    // Backfilled again from scratch, no value changes: a row is done once it is not NULL.
    await rollback('backfill');
    await apply('backfill');
    expect(await db.sql(`SELECT id, public_id FROM tokens ORDER BY id`)).toEqual(filled);

    await apply('switch-read');
    expect(await db.sql(`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'tokens'::regclass AND attname = 'public_id'`)).toEqual([{ attnotnull: true }]);
    expect(await db.sql(`SELECT conname FROM pg_constraint WHERE conrelid = 'tokens'::regclass AND contype = 'u'`)).toEqual([
      { conname: 'tokens_public_id_pgshift_uq' },
    ]);
    // Old code still inserts without the column; new code names it.
    await oldInsert();
    await db.sql(`INSERT INTO tokens (note, public_id) VALUES ('new code', '00000000-0000-4000-8000-000000000001')`);
    await expect(db.sql(`INSERT INTO tokens (note, public_id) VALUES ('dup', '00000000-0000-4000-8000-000000000001')`)).rejects.toThrow(/unique/);

    // Back from each phase to nothing, one at a time: each rollback takes away what its phase made.
    await rollback('switch-read');
    expect(await db.sql(`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'tokens'::regclass AND attname = 'public_id'`)).toEqual([{ attnotnull: false }]);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_constraint WHERE conrelid = 'tokens'::regclass AND contype IN ('u', 'c')`)).toEqual([{ n: 0 }]);
    expect(await db.sql(`SELECT to_regclass('tokens_public_id_pgshift_uq') AS i`)).toEqual([{ i: null }]);
    await rollback('backfill');
    await rollback('dual-write');
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'tokens'::regclass`)).toEqual([{ n: 0 }]);
    await oldInsert();
    expect(await db.sql(`SELECT count(*)::int AS n FROM tokens WHERE public_id IS NULL`)).toEqual([{ n: 1 }]);
    await rollback('expand');
    expect(await columns('tokens')).toEqual(['id', 'note']);

    for (const phase of PHASES) await apply(phase);
    expect(await columns('tokens')).toEqual(['id', 'note', 'public_id']);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'tokens'::regclass`)).toEqual([{ n: 0 }]);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_proc WHERE proname LIKE '${plan}%'`)).toEqual([{ n: 0 }]);
    expect(await db.sql(`SELECT count(*)::int AS n FROM tokens WHERE public_id IS NULL`)).toEqual([{ n: 0 }]);
  });

  it('computes the value from the row and a lookup in another table, the key included, for old inserts and existing rows alike', async () => {
    await db.sql(`CREATE TABLE countries (name text PRIMARY KEY, code text NOT NULL); INSERT INTO countries VALUES ('France', 'FR'), ('Peru', 'PE')`);
    await db.sql(
      `CREATE TABLE shops (id bigserial PRIMARY KEY, country text NOT NULL); INSERT INTO shops (country) SELECT (ARRAY['France', 'Peru'])[1 + g % 2] FROM generate_series(1, 100) g`,
    );
    const plan = 'add-shops-ref';
    const value = `(SELECT c.code FROM public.countries c WHERE c.name = country) || '-' || id`;
    const dir = await planDir({
      [`${plan}.yaml`]: `table: shops\nadd: { column: ref, type: text, not_null: true, value: "${value}", default: "'none'" }\n${GUARDS}\n`,
    });
    const shown = await cli(dir, 'show', plan, '--phase', 'dual-write');
    expect(shown.code).toBe(0);
    const steps = (shown.lines[0] as { apply: { lock?: string; statements?: string[] }[] }).apply;
    expect(steps.map((s) => s.lock)).toEqual(['none', 'SHARE ROW EXCLUSIVE']);
    const dual = await cli(dir, 'apply', plan, '--phase', 'dual-write');
    expect(dual.errors).toBe('');
    expect(dual.code).toBe(0);
    await db.sql(`INSERT INTO shops (country) VALUES ('Peru')`);
    expect((await cli(dir, 'apply', plan, '--phase', 'stop-write')).code).toBe(0);
    const wrong = await db.sql(
      `SELECT count(*)::int AS n FROM shops s WHERE s.ref IS DISTINCT FROM (SELECT c.code FROM countries c WHERE c.name = s.country) || '-' || s.id`,
    );
    expect(wrong).toEqual([{ n: 0 }]);
    expect(await db.sql(`SELECT count(*)::int AS n FROM shops`)).toEqual([{ n: 101 }]);
    // From stop-write, new code's inserts that leave it out get the default, not the value.
    await db.sql(`INSERT INTO shops (country) VALUES ('France')`);
    expect(await db.sql(`SELECT ref FROM shops ORDER BY id DESC LIMIT 1`)).toEqual([{ ref: 'none' }]);
  });
});
