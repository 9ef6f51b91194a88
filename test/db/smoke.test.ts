import { beforeAll, describe, expect, it } from 'vitest';
import { apply, rollback, status } from '../../src/index.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, seedUsers, SPLIT_YAML, USERS_TABLE } from '../helpers/fixtures.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(2000));
});

describe('split through six phases', () => {
  it('applies all phases and reports complete', async () => {
    const p = plan(SPLIT_YAML);
    const [outcome] = await apply([p], 'stop-write', { databaseUrl: db.url });
    expect(outcome!.error).toBeUndefined();
    expect(outcome!.phases).toEqual(['expand', 'dual-write', 'backfill', 'switch-read', 'stop-write']);
    const rows = await db.sql<{ first_name: string; last_name: string }>(`SELECT first_name, last_name FROM users WHERE id = 7`);
    expect(rows[0]).toEqual({ first_name: 'First7', last_name: 'Last7' });
    await rollback(p, 'expand', { databaseUrl: db.url });
    const [s] = await status([p], { databaseUrl: db.url });
    expect(s).toMatchObject({ phase: null, status: 'rolled_back' });
  });
});
