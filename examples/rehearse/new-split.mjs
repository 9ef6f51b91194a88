// The new release's tests for plans/split-users-full-name.yaml (v3 of examples/app): it knows
// first_name and last_name only, and shows every user's first name.
import { suite } from './suite.mjs';

await suite('new app (split)', async (db, check) => {
  const grace = (await db.query(`INSERT INTO users (first_name, last_name, email) VALUES ('Grace', 'Hopper', 'grace@example.com') RETURNING id`)).rows[0].id;
  await db.query(`UPDATE users SET last_name = 'Brewster' WHERE id = $1`, [grace]);
  const name = (await db.query(`SELECT concat_ws(' ', first_name, last_name) AS name FROM users WHERE id = $1`, [grace])).rows[0].name;
  check('name read back', name === 'Grace Brewster', name);
  // Rows this release did not write (older users) must show a first name too.
  const missing = Number((await db.query('SELECT count(*) AS n FROM users WHERE first_name IS NULL')).rows[0].n);
  check('every user has a first_name', missing === 0, missing);
});
