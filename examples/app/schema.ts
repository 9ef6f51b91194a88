import type { Db } from './types.js';

/** The example table both plans change (the same shape as the tests' fixture). */
export const USERS_DDL = `
  CREATE TABLE users (
    id bigserial PRIMARY KEY,
    full_name text NOT NULL DEFAULT 'anonymous',
    user_name text,
    email text
  )`;

/**
 * What seeded row `g` holds, as SQL over `g`. The checker reads the same
 * expressions, so untouched seed rows are checked too (the backfill's work).
 */
export const SEED_COLUMNS: Readonly<Record<string, string>> = {
  full_name: `CASE WHEN g % 10 = 0 THEN 'Prince' || g ELSE 'First' || g || ' Last' || g END`,
  user_name: `'user' || g`,
  email: `'u' || g || '@example.com'`,
};

/** Rows per INSERT while seeding: big enough to be quick, small enough to keep each transaction short. */
const SEED_CHUNK = 50_000;

/** Create `users` with ids 1..rows (dropping any earlier copy) and analyze it. */
export async function createUsers(db: Db, rows: number): Promise<void> {
  await db.query('DROP TABLE IF EXISTS users');
  await db.query(USERS_DDL);
  const names = Object.keys(SEED_COLUMNS);
  for (let from = 1; from <= rows; from += SEED_CHUNK) {
    const to = Math.min(rows, from + SEED_CHUNK - 1);
    await db.query(
      `INSERT INTO users (id, ${names.join(', ')}) SELECT g, ${names.map((n) => SEED_COLUMNS[n]).join(', ')} FROM generate_series($1::bigint, $2::bigint) g`,
      [from, to],
    );
  }
  await db.query(`SELECT setval(pg_get_serial_sequence('users', 'id'), greatest($1::bigint, 1))`, [rows]);
  await db.query('ANALYZE users');
}
