import { phaseFlag } from './phase-flag.js';
import { insertedId, page, type AppFamily, type Row, type UsersApp } from './types.js';

/**
 * The users app across `plans/split-users-full-name.yaml`. Every tenth name
 * is a single word, which the split leaves with no last name; one insert in
 * twenty gives no name at all.
 */
const PLAN = 'split-users-full-name';

/** `users.full_name`'s column default, which v1 relies on for users who give no name. */
const ANONYMOUS = 'anonymous';

/** v1: knows `full_name` only. Runs until switch-read, and again when it is rolled back. */
function v1(): UsersApp {
  return {
    version: 'v1',
    writes: 'old',
    values: (n) => ({
      full_name: n % 20 === 5 ? ANONYMOUS : n % 10 === 0 ? `Mononym${n}` : `Ada${n} Lovelace${n}`,
      email: `ada${n}@example.com`,
    }),
    // A user without a name is inserted without the column, so the default applies (from switch-read on, pgshift's trigger applies it).
    insert: async (db, row) =>
      insertedId(
        row.full_name === ANONYMOUS
          ? await db.query('INSERT INTO users (email) VALUES ($1) RETURNING id', [row.email])
          : await db.query('INSERT INTO users (full_name, email) VALUES ($1, $2) RETURNING id', [row.full_name, row.email]),
      ),
    update: async (db, id, row) => (await db.query('UPDATE users SET full_name = $2, email = $3 WHERE id = $1', [id, row.full_name, row.email])).rowCount === 1,
    read: async (db, id) => (await db.query<{ name: string | null }>('SELECT full_name AS name FROM users WHERE id = $1', [id])).rows[0]?.name || null,
    list: async (db, afterId, limit) =>
      page(await db.query('SELECT id, full_name AS name, email FROM users WHERE id > $1 ORDER BY id LIMIT $2', [afterId, limit])),
  };
}

/** Values new code writes: first and last name, the last one sometimes absent. */
function newValues(n: number): Row {
  return { first_name: `Grace${n}`, last_name: n % 10 === 0 ? null : `Hopper${n}`, email: `grace${n}@example.com` };
}

const insertNew = async (db: Parameters<UsersApp['insert']>[0], row: Row): Promise<string> =>
  insertedId(await db.query('INSERT INTO users (first_name, last_name, email) VALUES ($1, $2, $3) RETURNING id', [row.first_name, row.last_name, row.email]));
const updateNew = async (db: Parameters<UsersApp['update']>[0], id: string, row: Row): Promise<boolean> =>
  (await db.query('UPDATE users SET first_name = $2, last_name = $3, email = $4 WHERE id = $1', [id, row.first_name, row.last_name, row.email])).rowCount === 1;
const NEW_NAME = `concat_ws(' ', first_name, last_name)`;

/** v2: writes the new columns; reads them once the phase flag says reads are switched, else `full_name`. */
function v2(): UsersApp {
  const switched = phaseFlag(PLAN);
  const name = async (db: Parameters<UsersApp['read']>[0]): Promise<string> => ((await switched(db)) ? `nullif(${NEW_NAME}, '')` : 'full_name');
  return {
    version: 'v2',
    writes: 'new',
    values: newValues,
    insert: insertNew,
    update: updateNew,
    read: async (db, id) => (await db.query<{ name: string | null }>(`SELECT ${await name(db)} AS name FROM users WHERE id = $1`, [id])).rows[0]?.name || null,
    list: async (db, afterId, limit) =>
      page(await db.query(`SELECT id, ${await name(db)} AS name, email FROM users WHERE id > $1 ORDER BY id LIMIT $2`, [afterId, limit])),
  };
}

/** v3: knows only `first_name` and `last_name`; ships from stop-write on, and must survive contract. */
function v3(): UsersApp {
  return {
    version: 'v3',
    writes: 'new',
    values: newValues,
    insert: insertNew,
    update: updateNew,
    read: async (db, id) =>
      (await db.query<{ name: string | null }>(`SELECT nullif(${NEW_NAME}, '') AS name FROM users WHERE id = $1`, [id])).rows[0]?.name || null,
    list: async (db, afterId, limit) =>
      page(await db.query(`SELECT id, nullif(${NEW_NAME}, '') AS name, email FROM users WHERE id > $1 ORDER BY id LIMIT $2`, [afterId, limit])),
  };
}

/** The split's releases. */
export const SPLIT_APP: AppFamily = { plan: PLAN, versions: { v1, v2, v3 } };
