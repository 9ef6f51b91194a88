// A read-only job of the new release for plans/split-users-full-name.yaml: it lists users by
// first_name, so it needs every existing row's first_name filled, i.e. backfilled.
import { suite } from './suite.mjs';

await suite('new report (split)', async (db, check) => {
  const missing = Number((await db.query('SELECT count(*) AS n FROM users WHERE first_name IS NULL')).rows[0].n);
  check('every user has a first_name', missing === 0, missing);
  const first = (await db.query('SELECT first_name FROM users ORDER BY first_name LIMIT 1')).rows[0]?.first_name;
  check('a first name to show', typeof first === 'string', first);
});
