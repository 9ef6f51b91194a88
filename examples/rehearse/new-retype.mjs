// The new release's tests for examples/rehearse/plans/retype-users-user-name-not-null.yaml: it writes login.
import { suite } from './suite.mjs';

await suite('new app (login)', async (db, check) => {
  const id = (await db.query(`INSERT INTO users (full_name, login, email) VALUES ('Grace Hopper', 'grace', 'grace@example.com') RETURNING id`)).rows[0].id;
  const login = (await db.query('SELECT login FROM users WHERE id = $1', [id])).rows[0].login;
  check('login read back', login === 'grace', login);
});
