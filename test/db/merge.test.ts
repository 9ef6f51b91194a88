import { beforeAll, describe, expect, it } from 'vitest';
import { apply, purge, rollback, show, type Phase } from '../../src/index.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/**
 * merge street + city → address (design §1), with the new column declaring
 * NOT NULL, a default and UNIQUE: forward through all six phases, back down
 * to nothing, and forward again to contract, with old code writing street
 * and city and new code writing address wherever each may run.
 */

const YAML = `
plan: merge-address
table: public.people
merge:
  columns: [street, city]
  into:
    name: address
    type: text
    using: "concat_ws(', ', street, city)"
    not_null: true
    default: "'nowhere, nocity'"
    unique: true
  reverse:
    street: "split_part(address, ', ', 1)"
    city: "split_part(address, ', ', 2)"
backfill: { batch_size: 70, pause: 0ms }
guards: { lock_timeout: 1s, statement_timeout: 20s, retries: 3 }
`;

let db: TestDatabase;
const p = plan(YAML);
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(`
    CREATE TABLE people (id bigserial PRIMARY KEY, name text, street text NOT NULL, city text NOT NULL DEFAULT 'Paris');
    INSERT INTO people (name, street, city) SELECT 'p' || g, g || ' Main St', 'City' || (g % 7) FROM generate_series(1, 500) g;`);
});

async function applyTo(phase: Phase): Promise<void> {
  const [outcome] = await apply([p], phase, { databaseUrl: db.url });
  expect(outcome!.error).toBeUndefined();
}

async function rollbackTo(phase: Phase): Promise<void> {
  const outcome = await rollback(p, phase, { databaseUrl: db.url });
  expect(outcome.error).toBeUndefined();
}

/** What each version wrote: by person name, the street and city it stands for. */
const expected = new Map<string, { street: string; city: string }>();
let n = 0;

async function oldCodeWrites(): Promise<void> {
  const name = `old${n++}`;
  await db.sql(`INSERT INTO people (name, street) VALUES ($1, $1 || ' Old Rd')`, [name]); // city from its default
  expected.set(name, { street: `${name} Old Rd`, city: 'Paris' });
  await db.sql(`UPDATE people SET city = 'Lyon' WHERE name = $1`, [name]);
  expected.set(name, { street: `${name} Old Rd`, city: 'Lyon' });
  await db.sql(`UPDATE people SET street = '1 Quai' WHERE name = 'p1'`);
  expected.set('p1', { street: '1 Quai', city: 'City1' });
}

async function newCodeWrites(): Promise<void> {
  const name = `new${n++}`;
  await db.sql(`INSERT INTO people (name, address) VALUES ($1, $1 || ' New Av, Nice')`, [name]);
  expected.set(name, { street: `${name} New Av`, city: 'Nice' });
  await db.sql(`UPDATE people SET address = '2 Rue, Lille' WHERE name = 'p2'`);
  expected.set('p2', { street: '2 Rue', city: 'Lille' });
}

async function oldSideMatches(): Promise<void> {
  const rows = await db.sql<{ name: string; street: string; city: string }>(`SELECT name, street, city FROM people WHERE name = ANY ($1)`, [
    [...expected.keys()],
  ]);
  expect(Object.fromEntries(rows.map((r) => [r.name, { street: r.street, city: r.city }]))).toEqual(Object.fromEntries(expected));
}

async function newSideMatches(): Promise<void> {
  const rows = await db.sql<{ name: string; address: string }>(`SELECT name, address FROM people WHERE name = ANY ($1)`, [[...expected.keys()]]);
  expect(Object.fromEntries(rows.map((r) => [r.name, r.address]))).toEqual(Object.fromEntries([...expected].map(([k, v]) => [k, `${v.street}, ${v.city}`])));
}

async function disagreeing(): Promise<number> {
  const [row] = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM people WHERE address IS DISTINCT FROM concat_ws(', ', street, city)`);
  return row!.n;
}

async function declared(): Promise<{ notNull: boolean; default: string | null; unique: string[] }> {
  const [col] = await db.sql<{ notNull: boolean; default: string | null }>(
    `SELECT a.attnotnull AS "notNull", pg_get_expr(d.adbin, d.adrelid) AS default FROM pg_attribute a
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = 'people'::regclass AND a.attname = 'address'`,
  );
  const unique = await db.sql<{ def: string }>(
    `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'people'::regclass AND contype = 'u'`,
  );
  return { ...col!, unique: unique.map((u) => u.def) };
}

describe('merge street + city into address', () => {
  it('shows the declared constraints enforced the safe way in switch-read', async () => {
    const [switchRead] = await show(p, 'switch-read', { databaseUrl: db.url });
    const steps = switchRead!.apply.filter((s) => s.kind === 'sql');
    expect(steps.map((s) => [s.description.split(' (')[0], s.lock, s.transaction])).toEqual([
      ['default on address', 'ACCESS EXCLUSIVE', true],
      ['add CHECK', 'ACCESS EXCLUSIVE', true],
      ['validate the NOT NULL check on address', 'SHARE UPDATE EXCLUSIVE', true],
      ['SET NOT NULL on address, proven by the valid check; drop the check', 'ACCESS EXCLUSIVE', true],
      ['build a unique index on address CONCURRENTLY', 'SHARE UPDATE EXCLUSIVE', false],
      ['attach the unique index people_address_pgshift_uq as a UNIQUE constraint', 'ACCESS EXCLUSIVE', true],
      ['sync trigger function: two-way-defaults', 'none', true],
      ["move the old columns' defaults into the trigger", 'ACCESS EXCLUSIVE', true],
    ]);
  });

  it('goes forward and back with writes from both code versions, losing none', async () => {
    for (const phase of ['expand', 'dual-write', 'backfill'] as const) {
      await applyTo(phase);
      await oldCodeWrites();
    }
    expect(await disagreeing()).toBe(0);
    await newSideMatches();
    expect(await declared()).toEqual({ notNull: false, default: null, unique: [] });

    await applyTo('switch-read');
    expect(await declared()).toEqual({ notNull: true, default: "'nowhere, nocity'::text", unique: ['UNIQUE (address)'] });
    await oldCodeWrites();
    await newCodeWrites();
    // New code may leave address out: the declared default applies, and the old side is derived from it.
    await db.sql(`INSERT INTO people (name) VALUES ('defaulted')`);
    expected.set('defaulted', { street: 'nowhere', city: 'nocity' });
    await expect(db.sql(`INSERT INTO people (name, address) VALUES ('twin', '2 Rue, Lille')`)).rejects.toThrow(/people_address_pgshift_uq/);
    expect(await disagreeing()).toBe(0);

    await applyTo('stop-write');
    await newCodeWrites();
    await oldSideMatches();
    await newSideMatches();

    await rollbackTo('stop-write');
    await newCodeWrites();
    await rollbackTo('switch-read');
    expect(await declared()).toEqual({ notNull: false, default: null, unique: [] });
    await oldCodeWrites();
    expect(await disagreeing()).toBe(0);
    await rollbackTo('expand');
    await oldSideMatches();
    expect(await db.sql(`SELECT 1 FROM pg_attribute WHERE attrelid = 'people'::regclass AND attname = 'address' AND NOT attisdropped`)).toEqual([]);
    // The old columns are as they were: NOT NULL, and city's default.
    expect(
      await db.sql(`SELECT attname AS name, attnotnull AS "notNull", pg_get_expr(d.adbin, d.adrelid) AS default FROM pg_attribute a
                      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                     WHERE attrelid = 'people'::regclass AND attname IN ('street', 'city') ORDER BY 1`),
    ).toEqual([
      { name: 'city', notNull: true, default: "'Paris'::text" },
      { name: 'street', notNull: true, default: null },
    ]);

    await applyTo('contract');
    await newCodeWrites();
    await newSideMatches();
    expect(await declared()).toEqual({ notNull: true, default: "'nowhere, nocity'::text", unique: ['UNIQUE (address)'] });
    const columns = async (): Promise<string[]> =>
      (
        await db.sql<{ name: string }>(
          `SELECT attname AS name FROM pg_attribute WHERE attrelid = 'people'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        )
      ).map((c) => c.name);
    // contract archived street and city; purge drops them.
    expect(await columns()).toEqual(['id', 'name', '_pgshift_merge-address_street', '_pgshift_merge-address_city', 'address']);
    await purge(p, { databaseUrl: db.url });
    expect(await columns()).toEqual(['id', 'name', 'address']);
    expect(await db.sql(`SELECT count(*)::int AS n FROM people`)).toEqual([{ n: 500 + n + 1 }]);
  });
});
