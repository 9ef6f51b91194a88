import { insertedId, page, type AppFamily, type UsersApp } from './types.js';

/**
 * The users app across an index plan on `users` (test/db/live-traffic-index.test.ts):
 * an index changes no column, so every release reads and writes the same
 * columns; they differ in their version alone, and the plan's phases are
 * taken under traffic from the same code as a rollout would ship it. Each
 * write's email is unique over the run, as a unique index on it requires.
 */
function release(version: UsersApp['version']): UsersApp {
  return {
    version,
    writes: 'old',
    values: (n) => ({ user_name: `${version}_user${n}`, email: `${version}.user${n}@example.com` }),
    insert: async (db, row) => insertedId(await db.query(`INSERT INTO users (user_name, email) VALUES ($1, $2) RETURNING id`, [row.user_name, row.email])),
    update: async (db, id, row) => (await db.query(`UPDATE users SET user_name = $2, email = $3 WHERE id = $1`, [id, row.user_name, row.email])).rowCount === 1,
    read: async (db, id) => (await db.query<{ name: string | null }>(`SELECT user_name AS name FROM users WHERE id = $1`, [id])).rows[0]?.name || null,
    list: async (db, afterId, limit) =>
      page(await db.query(`SELECT id, user_name AS name, email FROM users WHERE id > $1 ORDER BY id LIMIT $2`, [afterId, limit])),
  };
}

/** The releases across an index plan named `plan`: the same code three times. */
export function indexApp(plan: string): AppFamily {
  return { plan, versions: { v1: () => release('v1'), v2: () => release('v2'), v3: () => release('v3') } };
}
