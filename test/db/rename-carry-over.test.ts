import { beforeAll, describe, expect, it } from 'vitest';
import { apply, purge, rollback, type Phase } from '../../src/index.js';
import { describeTable } from '../helpers/catalog.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/**
 * A rename must leave the table as a plain `RENAME COLUMN` would: the same
 * type, collation, default, NOT NULL, CHECK, foreign keys both ways, unique
 * constraint and indexes (plain, unique expression, partial), on the new
 * name, and a multi-column CHECK and index (ordering, INCLUDE, storage
 * option) too. The same schema is built twice: `public` goes through pgshift's six
 * phases with writes from both code versions, `plain` gets the plain rename.
 */

const SCHEMA = (s: string): string => `
  CREATE SCHEMA IF NOT EXISTS ${s};
  CREATE TABLE ${s}.accounts (login text PRIMARY KEY);
  CREATE TABLE ${s}.users (
    id bigserial PRIMARY KEY,
    user_name text COLLATE "C" NOT NULL DEFAULT 'anon'
      CHECK (length(user_name) > 0)
      REFERENCES ${s}.accounts (login) ON UPDATE CASCADE,
    active boolean NOT NULL DEFAULT true,
    CONSTRAINT users_user_name_key UNIQUE (user_name),
    CONSTRAINT users_name_is_not_id CHECK (user_name <> id::text)
  );
  CREATE INDEX users_active_user_name_idx ON ${s}.users (active, user_name DESC NULLS LAST) INCLUDE (id) WITH (fillfactor = 70);
  CREATE INDEX users_user_name_idx ON ${s}.users (user_name);
  CREATE UNIQUE INDEX users_lower_user_name_idx ON ${s}.users (lower(user_name));
  CREATE INDEX users_user_name_active_idx ON ${s}.users (user_name text_pattern_ops) WHERE active AND user_name <> 'a, b';
  CREATE TABLE ${s}.orders (id bigserial PRIMARY KEY, user_name text REFERENCES ${s}.users (user_name) ON DELETE CASCADE);
  COMMENT ON COLUMN ${s}.users.user_name IS 'the login';
  INSERT INTO ${s}.accounts SELECT 'user' || g FROM generate_series(1, 500) g;
  INSERT INTO ${s}.accounts VALUES ('anon');
  INSERT INTO ${s}.users (user_name) SELECT 'user' || g FROM generate_series(1, 300) g;
  INSERT INTO ${s}.orders (user_name) SELECT 'user' || (1 + g % 300) FROM generate_series(1, 600) g;
`;

/** What the plain rename leaves, with the object names pgshift gives (documented: names with the old column name get the new one). */
const PLAIN_RENAME = `
  ALTER TABLE plain.users RENAME COLUMN user_name TO username;
  ALTER TABLE plain.users RENAME CONSTRAINT users_user_name_key TO users_username_key;
  ALTER TABLE plain.users RENAME CONSTRAINT users_user_name_check TO users_username_check;
  ALTER TABLE plain.users RENAME CONSTRAINT users_user_name_fkey TO users_username_fkey;
  DO $$ BEGIN -- NOT NULL is a named constraint from PostgreSQL 18 on
    IF current_setting('server_version_num')::int >= 180000 THEN
      ALTER TABLE plain.users RENAME CONSTRAINT users_user_name_not_null TO users_username_not_null;
    END IF;
  END $$;
  ALTER INDEX plain.users_user_name_idx RENAME TO users_username_idx;
  ALTER INDEX plain.users_lower_user_name_idx RENAME TO users_lower_username_idx;
  ALTER INDEX plain.users_user_name_active_idx RENAME TO users_username_active_idx;
  ALTER INDEX plain.users_active_user_name_idx RENAME TO users_active_username_idx;
`;

const YAML = `
plan: rename-users-login
table: public.users
rename: { column: user_name, to: username }
backfill: { batch_size: 100, pause: 0ms }
guards: { lock_timeout: 1s, statement_timeout: 20s, retries: 3 }
`;

let db: TestDatabase;
const p = plan(YAML);
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(SCHEMA('public'));
  await db.sql(SCHEMA('plain'));
});

async function applyTo(phase: Phase): Promise<void> {
  const [outcome] = await apply([p], phase, { databaseUrl: db.url });
  expect(outcome!.error).toBeUndefined();
}

async function rollbackTo(phase: Phase): Promise<void> {
  const outcome = await rollback(p, phase, { databaseUrl: db.url });
  expect(outcome.error).toBeUndefined();
}

let n = 1000;
/** Old code: knows only user_name. */
async function oldCodeWrites(): Promise<string> {
  const name = `old${n++}`;
  await db.sql(`INSERT INTO accounts VALUES ($1), ($1 || 'x')`, [name]);
  const [row] = await db.sql<{ id: string }>(`INSERT INTO users (user_name) VALUES ($1) RETURNING id`, [name]);
  await db.sql(`UPDATE users SET user_name = $1 || 'x' WHERE id = $2`, [name, row!.id]);
  await db.sql(`INSERT INTO orders (user_name) VALUES ($1 || 'x')`, [name]);
  // A default still applies to old code's inserts.
  await db.sql(`DELETE FROM users WHERE user_name = 'anon'`);
  await db.sql(`INSERT INTO users (active) VALUES (false)`);
  return `${name}x`;
}

/** New code: knows only username. */
async function newCodeWrites(): Promise<string> {
  const name = `new${n++}`;
  await db.sql(`INSERT INTO accounts VALUES ($1), ($1 || 'y')`, [name]);
  const [row] = await db.sql<{ id: string }>(`INSERT INTO users (username) VALUES ($1) RETURNING id`, [name]);
  await db.sql(`UPDATE users SET username = $1 || 'y' WHERE id = $2`, [name, row!.id]);
  await db.sql(`INSERT INTO orders (user_name) VALUES ($1 || 'y')`, [name]);
  return `${name}y`;
}

async function disagreeing(): Promise<number> {
  const [row] = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM users WHERE user_name IS DISTINCT FROM username`);
  return row!.n;
}

async function hasUser(column: string, name: string): Promise<boolean> {
  const rows = await db.sql(`SELECT 1 FROM users WHERE ${column} = $1`, [name]);
  return rows.length === 1;
}

/** The table as the catalog sees it, names normalized away only where they may differ (none), columns by name. */
async function catalogOf(schema: string): Promise<unknown> {
  await db.sql(`SET search_path = ${schema}`);
  try {
    const users = await describeTable(db, 'users');
    const orders = await describeTable(db, 'orders');
    const comment = await db.sql(
      `SELECT col_description('users'::regclass, attnum) AS c FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'username'`,
    );
    const byName = (rows: unknown[]): unknown[] =>
      [...rows].sort((a, b) => String((a as { name: string }).name).localeCompare(String((b as { name: string }).name)));
    // pg_get_indexdef always qualifies the table; the schema is the one thing meant to differ.
    const unqualified = (rows: unknown[]): unknown[] =>
      rows.map((r) => ({ ...(r as object), def: String((r as { def: string }).def).replace(` ON ${schema}.`, ' ON ') }));
    return {
      users: { ...users, columns: byName(users.columns!), indexes: unqualified(users.indexes!) },
      orders: { ...orders, indexes: unqualified(orders.indexes!) },
      comment,
    };
  } finally {
    await db.sql(`SET search_path = "$user", public`);
  }
}

describe('rename carries the column definition', () => {
  it('goes forward and back with writes from both code versions, and after contract matches a plain RENAME COLUMN', async () => {
    const written: { column: string; name: string }[] = [];

    for (const phase of ['expand', 'dual-write', 'backfill'] as const) {
      await applyTo(phase);
      written.push({ column: 'user_name', name: await oldCodeWrites() });
      // From dual-write on, the trigger keeps both sides equal; from backfill on, for every row.
      if (phase === 'backfill') expect(await disagreeing()).toBe(0);
    }
    await applyTo('switch-read');
    written.push({ column: 'user_name', name: await oldCodeWrites() }, { column: 'username', name: await newCodeWrites() });
    expect(await disagreeing()).toBe(0);

    // The copies are in place and valid before new code reads through them.
    const copies = await db.sql<{ name: string; valid: boolean }>(
      `SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'users'::regclass AND c.relname LIKE '%pgshift' ORDER BY 1`,
    );
    expect(copies).toEqual([
      { name: 'users_active_username_idx_pgshift', valid: true },
      { name: 'users_lower_username_idx_pgshift', valid: true },
      { name: 'users_username_active_idx_pgshift', valid: true },
      { name: 'users_username_idx_pgshift', valid: true },
      { name: 'users_username_key_pgshift', valid: true },
    ]);
    // The carried constraints bite on the new column already.
    await expect(db.sql(`INSERT INTO users (username) VALUES ('')`)).rejects.toThrow(/users_username_check_pgshift|users_user_name_check/);
    await expect(db.sql(`INSERT INTO users (username) VALUES ('nobody')`)).rejects.toThrow(/foreign key/);

    await applyTo('stop-write');
    written.push({ column: 'username', name: await newCodeWrites() });
    expect(await disagreeing()).toBe(0);

    // All the way back: every write of either version survives, in both columns.
    for (const phase of ['stop-write', 'switch-read', 'backfill', 'dual-write'] as const) {
      await rollbackTo(phase);
      if (phase === 'stop-write') written.push({ column: 'username', name: await newCodeWrites() });
      written.push({ column: 'user_name', name: await oldCodeWrites() });
      if (phase !== 'dual-write') expect(await disagreeing()).toBe(0);
    }
    const leftovers = await db.sql(
      `SELECT conname AS name FROM pg_constraint WHERE conname LIKE '%pgshift%'
       UNION ALL SELECT relname FROM pg_class WHERE relname LIKE '%pgshift%' AND relkind = 'i'`,
    );
    expect(leftovers).toEqual([]);
    await rollbackTo('expand');
    written.push({ column: 'user_name', name: await oldCodeWrites() });
    for (const w of written) expect(await hasUser('user_name', w.name)).toBe(true);

    // And forward again, to the end.
    await applyTo('switch-read');
    written.push({ column: 'username', name: await newCodeWrites() });
    await applyTo('contract');
    written.push({ column: 'username', name: await newCodeWrites() });
    for (const w of written) expect(await hasUser('username', w.name)).toBe(true);

    // Once the archived user_name is purged, the same definition as a plain RENAME COLUMN (column order aside: username is last here).
    expect((await purge(p, { databaseUrl: db.url })).purged).toEqual([{ column: 'user_name', archive: `_pgshift_${p.name}_user_name` }]);
    await db.sql(PLAIN_RENAME);
    const ours = await catalogOf('public');
    const plain = await catalogOf('plain');
    expect(ours).toEqual(plain);
    expect((ours as { users: { indexes: unknown[] } }).users.indexes).toHaveLength(6);

    // The foreign keys work through the new column: both ways.
    await expect(db.sql(`INSERT INTO orders (user_name) VALUES ('nobody')`)).rejects.toThrow(/orders_user_name_fkey/);
    await db.sql(`INSERT INTO accounts VALUES ('lonely'); INSERT INTO users (username) VALUES ('lonely')`);
    await db.sql(`UPDATE accounts SET login = 'renamed' WHERE login = 'lonely'`);
    expect(await hasUser('username', 'renamed')).toBe(true);
    expect((await db.sql(`SELECT 1 FROM orders WHERE user_name = 'user1'`)).length).toBeGreaterThan(0);
    await db.sql(`DELETE FROM users WHERE username = 'user1'`);
    expect(await db.sql(`SELECT 1 FROM orders WHERE user_name = 'user1'`)).toEqual([]);
  });
});

describe('rename of a serial column', () => {
  it('moves the owned sequence to the new column, so contract keeps it and numbering goes on', async () => {
    await db.sql(`CREATE TABLE tickets (id bigserial PRIMARY KEY, number serial NOT NULL);
                  INSERT INTO tickets DEFAULT VALUES; INSERT INTO tickets DEFAULT VALUES;`);
    const p2 = plan(`
plan: rename-ticket-number
table: tickets
rename: { column: number, to: ticket_no }`);
    const [outcome] = await apply([p2], 'contract', { databaseUrl: db.url });
    expect(outcome!.error).toBeUndefined();
    const [row] = await db.sql<{ n: number }>(`INSERT INTO tickets DEFAULT VALUES RETURNING ticket_no AS n`);
    expect(row!.n).toBe(3);
    expect(await db.sql(`SELECT pg_get_serial_sequence('tickets', 'ticket_no') AS s`)).toEqual([{ s: 'public.tickets_number_seq' }]);
  });
});
