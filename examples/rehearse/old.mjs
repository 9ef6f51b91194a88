// The old release's tests (v1 of examples/app): it knows full_name only, and leaves out
// columns it does not know, relying on their defaults.
import { suite } from './suite.mjs';

await suite('old app (v1)', async (db, check) => {
  const ada = (await db.query(`INSERT INTO users (full_name, email) VALUES ('Ada Lovelace', 'ada@example.com') RETURNING id`)).rows[0].id;
  // A user who gives no name: the insert leaves full_name (and every column v1 does not know) out.
  const anon = (await db.query(`INSERT INTO users (email) VALUES ('anon@example.com') RETURNING id`)).rows[0].id;
  await db.query(`UPDATE users SET full_name = 'Ada King' WHERE id = $1`, [ada]);
  const names = (await db.query('SELECT full_name FROM users WHERE id = ANY($1) ORDER BY id', [[ada, anon]])).rows.map((r) => r.full_name);
  check('names read back', names[0] === 'Ada King' && names[1] === 'anonymous', names);
  const missing = Number((await db.query('SELECT count(*) AS n FROM users WHERE full_name IS NULL')).rows[0].n);
  check('every user has a full_name', missing === 0, missing);
});
