import { beforeAll, describe, expect, it } from 'vitest';
import { apply, PlanError } from '../../src/index.js';
import { describeDatabase } from '../helpers/catalog.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/** What a rename cannot carry is refused before anything runs, with a message naming it. */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(`
    CREATE TABLE t (
      id int GENERATED ALWAYS AS IDENTITY,
      code text NOT NULL UNIQUE,
      name text,
      shout text GENERATED ALWAYS AS (upper(name)) STORED,
      during int4range,
      PRIMARY KEY (id, name),
      EXCLUDE USING gist (during WITH &&)
    );
    CREATE VIEW t_names AS SELECT code, name FROM t;`);
});

async function refusal(yaml: string): Promise<string> {
  const [outcome] = await apply([plan(yaml)], 'expand', { databaseUrl: db.url });
  expect(outcome!.error).toBeInstanceOf(PlanError);
  return outcome!.error!.message;
}

const renamePlan = (column: string, to: string): string => `
plan: rename-${column}
table: t
key: [code]
rename: { column: ${column}, to: ${to} }`;

describe('rename refuses what it cannot carry', () => {
  it('refuses identity, generated, primary key and exclusion columns, and changes nothing', async () => {
    const before = await describeDatabase(db);
    expect(await refusal(renamePlan('id', 'ident'))).toMatch(/column "id" is an identity column/);
    expect(await refusal(renamePlan('shout', 'loud'))).toMatch(/column "shout" is a generated column/);
    const pk = await refusal(renamePlan('name', 'full_name'));
    expect(pk).toMatch(/column "name" is used by constraint t_pkey on table t: the column is part of the primary key/);
    // The view t_names reads the column too: views now go along (test/db/views.test.ts), so only the key is refused.
    expect(pk).not.toMatch(/t_names/);
    expect(await refusal(renamePlan('during', 'period'))).toMatch(/exclusion constraints are not carried/);
    expect(await describeDatabase(db)).toEqual(before);
  });
});
