import { phaseFlag } from './phase-flag.js';
import { insertedId, page, type AppFamily, type UsersApp } from './types.js';

/** The users app across `plans/rename-users-user-name.yaml`. */
const PLAN = 'rename-users-user-name';

/** A release that reads and writes one name column (`column` may depend on the phase flag). */
function release(version: UsersApp['version'], writes: 'user_name' | 'username', reads: (db: Parameters<UsersApp['read']>[0]) => Promise<string>): UsersApp {
  return {
    version,
    writes: writes === 'user_name' ? 'old' : 'new',
    values: (n) => ({ [writes]: `${version}_user${n}`, email: `${version}.user${n}@example.com` }),
    insert: async (db, row) => insertedId(await db.query(`INSERT INTO users (${writes}, email) VALUES ($1, $2) RETURNING id`, [row[writes], row.email])),
    update: async (db, id, row) => (await db.query(`UPDATE users SET ${writes} = $2, email = $3 WHERE id = $1`, [id, row[writes], row.email])).rowCount === 1,
    read: async (db, id) => (await db.query<{ name: string | null }>(`SELECT ${await reads(db)} AS name FROM users WHERE id = $1`, [id])).rows[0]?.name || null,
    list: async (db, afterId, limit) =>
      page(await db.query(`SELECT id, ${await reads(db)} AS name, email FROM users WHERE id > $1 ORDER BY id LIMIT $2`, [afterId, limit])),
  };
}

/** The rename's releases: v1 knows `user_name`; v2 writes `username` and reads it by flag; v3 knows only `username`. */
export const RENAME_APP: AppFamily = {
  plan: PLAN,
  versions: {
    v1: () => release('v1', 'user_name', async () => 'user_name'),
    v2: () => {
      const switched = phaseFlag(PLAN);
      return release('v2', 'username', async (db) => ((await switched(db)) ? 'username' : 'user_name'));
    },
    v3: () => release('v3', 'username', async () => 'username'),
  },
};
