import { beforeAll, describe, expect, it } from 'vitest';
import { PlanError } from '../../src/errors.js';
import { fillTable } from '../../src/rehearse/rows.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/** `--rows`: synthetic rows from the catalog's column types, server-side. */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`);
  await db.sql(`CREATE TABLE parent (id int PRIMARY KEY)`);
  await db.sql(`
    CREATE TABLE wide (
      id int PRIMARY KEY,
      code bigint NOT NULL UNIQUE,
      full_name text NOT NULL DEFAULT 'anonymous',
      note varchar(4),
      price text,
      flag boolean NOT NULL,
      born date, seen timestamptz NOT NULL DEFAULT now(), took interval,
      uid uuid UNIQUE, doc jsonb, blob bytea, addr inet, feeling mood NOT NULL,
      parent_id int REFERENCES parent (id),
      made bigint GENERATED ALWAYS AS IDENTITY
    )`);
});

describe('synthetic rows', () => {
  it('fills every column it can, keeps keys unique, gives the split column two words and a retype column castable values', async () => {
    await db.sql(`INSERT INTO wide (id, code, flag, feeling) VALUES (1, 1, true, 'ok')`);
    const split = plan(
      `table: wide\nsplit: { column: full_name, into: [{ name: a, type: text, using: "split_part(full_name, ' ', 1)" }, { name: b, type: text, using: "split_part(full_name, ' ', 2)" }], reverse: "a || ' ' || b" }\n`,
    );
    await withClient(db, (c) => fillTable(c, split, 500));
    const [r] = await db.sql<Record<string, string>>(`
      SELECT count(*) AS n, count(DISTINCT id) AS ids, count(DISTINCT code) AS codes,
             count(*) FILTER (WHERE full_name LIKE '% %') AS two_words, max(length(note)) AS note_len,
             count(DISTINCT feeling) AS moods, count(parent_id) AS parents, count(uid) AS uids, count(doc) AS docs, count(addr) AS addrs
        FROM wide`);
    expect(r).toEqual({ n: '501', ids: '501', codes: '501', two_words: '500', note_len: 4, moods: '3', parents: '0', uids: '500', docs: '500', addrs: '500' });

    const retype = plan(`table: wide\nretype: { column: price, to: "numeric(10,2)", using: "price::numeric(10,2)", reverse: "price::text" }\n`);
    await withClient(db, (c) => fillTable(c, retype, 10));
    const [p] = await db.sql<{ n: string; good: string }>(
      `SELECT count(*) AS n, count(*) FILTER (WHERE price ~ '^[0-9]+\\.[0-9]+$') AS good FROM wide WHERE id > 501`,
    );
    expect(p).toEqual({ n: '10', good: '10' });
  });

  it('refuses a NOT NULL column it cannot make up, by name', async () => {
    await db.sql(`CREATE TABLE child (id serial PRIMARY KEY, parent_id int NOT NULL REFERENCES parent (id), name text)`);
    const rename = plan(`table: child\nrename: { column: name, to: label }\n`);
    const error = await withClient(db, (c) => fillTable(c, rename, 5)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toMatch(/--rows cannot make up values for "child"\."parent_id" \(integer, a foreign key, NOT NULL\)/);
    expect(await db.sql(`SELECT * FROM child`)).toEqual([]);
  });
});

async function withClient<T>(d: TestDatabase, fn: (c: Awaited<ReturnType<TestDatabase['connect']>>) => Promise<T>): Promise<T> {
  const c = await d.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}
