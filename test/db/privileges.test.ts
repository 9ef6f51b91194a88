import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, splitPlanYaml, USERS_TABLE } from '../helpers/fixtures.js';

/**
 * Least privilege: pgshift run by roles that are not superusers. A missing
 * privilege is named, with the GRANT that fixes it, before anything changes
 * (exit 2), by `apply` and `lint` alike; a role without CREATE on the
 * database runs every phase in a schema made for it beforehand.
 */

let db: TestDatabase;
/** Role names, unique to this file's database (roles are cluster-wide). */
let runner: string;
let stranger: string;
let appRw: string;

/** The URL of this file's database, connecting as `role`. */
function urlAs(role: string): string {
  const url = new URL(db.url);
  url.username = role;
  url.password = 'pw';
  return url.toString();
}

beforeAll(async () => {
  db = await freshDatabase();
  runner = `${db.name}_runner`;
  stranger = `${db.name}_stranger`;
  appRw = `${db.name}_app_rw`;
  for (const role of [runner, stranger, appRw]) await db.sql(`CREATE ROLE "${role}" LOGIN PASSWORD 'pw'`);
  // PostgreSQL 14 still lets PUBLIC create in schema public; 15+ does not. Make both alike.
  await db.sql(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
  afterAll(async () => {
    await db.sql(`DROP OWNED BY "${runner}", "${stranger}", "${appRw}"`).catch(() => undefined);
    const admin = new pg.Client({ connectionString: inject('adminUrl') });
    await admin.connect();
    for (const role of [runner, stranger, appRw]) await admin.query(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined);
    await admin.end();
  });
});

/** A users-like table owned by the runner, with rows. */
async function table(name: string): Promise<void> {
  await db.sql(USERS_TABLE.replace('users', name));
  await db.sql(seedUsers(100).replace('INTO users', `INTO ${name}`));
  await db.sql(`ALTER TABLE ${name} OWNER TO "${runner}"`);
}

/** A split plan on `table`, in its own directory. */
async function splitPlan(plan: string, name: string): Promise<string> {
  return planDir({
    [`${plan}.yaml`]: splitPlanYaml(plan, `public.${name}`, '{ batch_size: 50, pause: 0ms }', '{ lock_timeout: 1s, statement_timeout: 10s, retries: 1 }'),
  });
}

/** Run `migrate plan <verb> …` as `role`. */
function cli(role: string, verb: string, dir: string, ...args: string[]): Promise<CliResult> {
  return runCli(['plan', verb, ...args, '--dir', dir, '--database-url', urlAs(role)]);
}

async function columnsOf(name: string): Promise<string[]> {
  const rows = await db.sql<{ attname: string }>(
    `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [name],
  );
  return rows.map((r) => r.attname);
}

const schemaExists = async (name: string): Promise<boolean> => (await db.sql<{ ok: boolean }>(`SELECT to_regnamespace($1) IS NOT NULL AS ok`, [name]))[0]!.ok;

describe('a runner without CREATE on the database', () => {
  it('is refused before any change, exit 2, naming the privilege and the GRANT; status still works', async () => {
    await table('no_create');
    const dir = await splitPlan('split-no-create', 'no_create');
    const before = await columnsOf('no_create');

    const applied = await cli(runner, 'apply', dir);
    expect(applied.code).toBe(2);
    expect(applied.errors).toContain(`role "${runner}" lacks CREATE on database "${db.name}"`);
    expect(applied.errors).toContain(`GRANT CREATE ON DATABASE "${db.name}" TO "${runner}"`);
    expect(await schemaExists('pgshift')).toBe(false);
    expect(await columnsOf('no_create')).toEqual(before);

    const status = await cli(runner, 'status', dir, '--json');
    expect(status.code).toBe(0);
    expect(status.lines[0]).toMatchObject([{ plan: 'split-no-create', status: 'not_started', phase: null }]);

    const linted = await cli(runner, 'lint', dir);
    expect(linted.code).toBe(2);
    expect(linted.errors).toContain(`GRANT CREATE ON DATABASE "${db.name}" TO "${runner}"`);
  });

  it('runs all six phases with --schema naming a schema it owns', async () => {
    await table('own_schema');
    await db.sql(`CREATE SCHEMA team_state AUTHORIZATION "${runner}"`);
    const dir = await splitPlan('split-own-schema', 'own_schema');

    const linted = await cli(runner, 'lint', dir, '--schema', 'team_state');
    expect(linted.errors).toBe('');
    expect(linted.code).toBe(0);
    const applied = await cli(runner, 'apply', dir, '--phase', 'contract', '--schema', 'team_state');
    expect(applied.errors).toBe('');
    expect(applied.code).toBe(0);
    expect(applied.lines).toContainEqual(
      expect.objectContaining({ event: 'apply', phases: ['expand', 'dual-write', 'backfill', 'switch-read', 'stop-write', 'contract'] }),
    );
    expect(await db.sql(`SELECT team_state.phase('split-own-schema') AS p`)).toEqual([{ p: 'contract' }]);
    // contract archived full_name; purge, with the state in the same schema, drops it.
    expect(await columnsOf('own_schema')).toEqual(['id', '_pgshift_split-own-schema_full_name', 'user_name', 'email', 'first_name', 'last_name']);
    const purged = await cli(runner, 'purge', dir, 'split-own-schema', '--schema', 'team_state');
    expect(purged.errors).toBe('');
    expect(purged.code).toBe(0);
    expect(await columnsOf('own_schema')).toEqual(['id', 'user_name', 'email', 'first_name', 'last_name']);
    expect(await db.sql(`SELECT count(*)::int AS n FROM own_schema WHERE first_name IS NULL`)).toEqual([{ n: 0 }]);
    expect(await schemaExists('pgshift')).toBe(false);

    // Another runner role may use the state tables only with grants on them: named, with the GRANT, before anything.
    await db.sql(`GRANT USAGE ON SCHEMA team_state TO "${stranger}"`);
    await db.sql(`GRANT SELECT ON team_state.plans TO "${stranger}"`);
    const other = await cli(stranger, 'apply', await splitPlan('split-other', 'own_schema'), '--schema', 'team_state');
    expect(other.code).toBe(2);
    expect(other.errors).toContain(`role "${stranger}" lacks INSERT, UPDATE on table "team_state"."plans"`);
    expect(other.errors).toContain(`GRANT INSERT, UPDATE ON "team_state"."plans" TO "${stranger}"`);
    expect(other.errors).toContain(`GRANT SELECT, INSERT ON "team_state"."events" TO "${stranger}"`);
    expect(await db.sql(`SELECT count(*)::int AS n FROM team_state.plans`)).toEqual([{ n: 1 }]);
  });
});

describe('a runner that does not own the table', () => {
  it('is refused before any change, exit 2, naming ownership and the fix', async () => {
    await table('not_mine');
    await db.sql(`GRANT CREATE ON DATABASE "${db.name}" TO "${stranger}"`);
    await db.sql(`GRANT ALL ON not_mine TO "${stranger}"`);
    const dir = await splitPlan('split-not-mine', 'not_mine');
    const before = await columnsOf('not_mine');
    try {
      for (const verb of ['apply', 'lint']) {
        const result = await cli(stranger, verb, dir);
        expect(result.code).toBe(2);
        expect(result.errors).toContain(`role "${stranger}" lacks ownership of table "public"."not_mine" (owned by "${runner}")`);
        expect(result.errors).toContain(`GRANT "${runner}" TO "${stranger}"`);
      }
      expect(await schemaExists('pgshift')).toBe(false);
      expect(await columnsOf('not_mine')).toEqual(before);
    } finally {
      await db.sql(`REVOKE CREATE ON DATABASE "${db.name}" FROM "${stranger}"`);
    }
  });
});

describe('a runner without TEMPORARY on the database', () => {
  it('is refused before any change, exit 2, naming TEMPORARY and the GRANT', async () => {
    await table('no_temp');
    await db.sql(`CREATE SCHEMA temp_state AUTHORIZATION "${runner}"`);
    const dir = await splitPlan('split-no-temp', 'no_temp');
    const before = await columnsOf('no_temp');
    await db.sql(`REVOKE TEMPORARY ON DATABASE "${db.name}" FROM PUBLIC`);
    try {
      for (const verb of ['apply', 'lint']) {
        const result = await cli(runner, verb, dir, '--schema', 'temp_state');
        expect(result.code).toBe(2);
        expect(result.errors).toContain(`role "${runner}" lacks TEMPORARY on database "${db.name}"`);
        expect(result.errors).toContain(`GRANT TEMPORARY ON DATABASE "${db.name}" TO "${runner}"`);
        expect(result.errors).not.toMatch(/does not exist/);
      }
      expect(await columnsOf('no_temp')).toEqual(before);
      expect(await db.sql(`SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'temp_state'::regnamespace`)).toEqual([{ n: 0 }]);
    } finally {
      await db.sql(`GRANT TEMPORARY ON DATABASE "${db.name}" TO PUBLIC`);
    }
  });
});

describe('lint and the roles of the application', () => {
  it('warns (exit 0) about a role with privileges on the table but no USAGE on a state schema the team made', async () => {
    await table('app_table');
    await db.sql(`GRANT SELECT, INSERT, UPDATE, DELETE ON app_table TO "${appRw}"`);
    const dir = await splitPlan('split-app-table', 'app_table');
    // A schema owned by the runner and empty is opened to PUBLIC when pgshift makes its state there: nothing to say.
    await db.sql(`CREATE SCHEMA app_state AUTHORIZATION "${runner}"`);
    const empty = await cli(runner, 'lint', dir, '--schema', 'app_state');
    expect(empty.code).toBe(0);
    expect(empty.lines.filter((l) => l.event === 'warning')).toEqual([]);
    // One that also holds the team's own tables keeps the team's grants.
    await db.sql(`CREATE TABLE app_state.settings (k text PRIMARY KEY, v text)`);

    const warned = await cli(runner, 'lint', dir, '--schema', 'app_state');
    expect(warned.code).toBe(0);
    const warnings = warned.lines.filter((l) => l.event === 'warning').map((l) => String(l.message));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`role "${appRw}" has privileges on public.app_table but no USAGE on the state schema "app_state"`);
    expect(warnings[0]).toContain(`GRANT USAGE ON SCHEMA "app_state" TO "${appRw}"`);

    await db.sql(`GRANT USAGE ON SCHEMA app_state TO "${appRw}"`);
    const clean = await cli(runner, 'lint', dir, '--schema', 'app_state');
    expect(clean.code).toBe(0);
    expect(clean.lines.filter((l) => l.event === 'warning')).toEqual([]);
  });
});

const RENAME = (plan: string, table: string, column: string, to: string): string =>
  `plan: ${plan}\ntable: public.${table}\nrename: { column: ${column}, to: ${to} }\nguards: { lock_timeout: 1s, statement_timeout: 10s, retries: 1 }\n`;

describe("a rename that carries foreign keys, run by the tables' owner", () => {
  it('goes forward and back and forward again to contract with --schema', async () => {
    await db.sql(`CREATE TABLE accounts (id bigserial PRIMARY KEY, code text NOT NULL UNIQUE, note text)`);
    await db.sql(`CREATE TABLE orders (id bigserial PRIMARY KEY, account_code text REFERENCES accounts (code))`);
    await db.sql(`INSERT INTO accounts (code) SELECT 'a' || g FROM generate_series(1, 50) g`);
    await db.sql(`INSERT INTO orders (account_code) SELECT 'a' || g FROM generate_series(1, 50) g`);
    for (const t of ['accounts', 'orders']) await db.sql(`ALTER TABLE ${t} OWNER TO "${runner}"`);
    await db.sql(`CREATE SCHEMA fk_state AUTHORIZATION "${runner}"`);
    const dir = await planDir({ 'rename-code.yaml': RENAME('rename-code', 'accounts', 'code', 'handle') });
    const run = (...args: string[]): Promise<CliResult> => cli(runner, args[0]!, dir, ...args.slice(1), '--schema', 'fk_state');

    // Copying the unique index builds one: CREATE INDEX checks CREATE on the table's schema, which owning the table does not give.
    const refused = await run('apply');
    expect(refused.code).toBe(2);
    expect(refused.errors).toContain(`role "${runner}" lacks CREATE on schema "public", needed to build indexes on public.accounts in switch-read`);
    expect(refused.errors).toContain(`GRANT CREATE ON SCHEMA "public" TO "${runner}"`);
    expect(await columnsOf('accounts')).toEqual(['id', 'code', 'note']);
    await db.sql(`GRANT CREATE ON SCHEMA public TO "${runner}"`);

    for (const [verb, ...args] of [
      ['apply', '--phase', 'stop-write'],
      ['rollback', 'rename-code', '--phase', 'expand'],
      ['apply', '--phase', 'contract'],
    ]) {
      const result = await run(verb!, ...args);
      expect(result.errors).toBe('');
      expect(result.code).toBe(0);
    }
    expect(await db.sql(`SELECT fk_state.phase('rename-code') AS p`)).toEqual([{ p: 'contract' }]);
    expect(await db.sql(`SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'f'`)).toEqual([
      { conname: 'orders_account_code_fkey', def: 'FOREIGN KEY (account_code) REFERENCES accounts(handle)' },
    ]);
    await db.sql(`REVOKE CREATE ON SCHEMA public FROM "${runner}"`);
  });
});

describe('a rename that needs more than the table', () => {
  it('names ownership of the referencing table and REFERENCES on the referenced one, before any change', async () => {
    await db.sql(`CREATE TABLE countries (code text PRIMARY KEY)`);
    await db.sql(`CREATE TABLE shops (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, country text REFERENCES countries (code))`);
    await db.sql(`CREATE TABLE visits (id bigserial PRIMARY KEY, shop_name text REFERENCES shops (name))`);
    await db.sql(`ALTER TABLE shops OWNER TO "${runner}"`);
    await db.sql(`ALTER TABLE visits OWNER TO "${stranger}"`);
    await db.sql(`CREATE SCHEMA shop_state AUTHORIZATION "${runner}"`);
    const dir = await planDir({
      'rename-shop-name.yaml': RENAME('rename-shop-name', 'shops', 'name', 'title'),
      'rename-shop-country.yaml': RENAME('rename-shop-country', 'shops', 'country', 'country_code'),
    });
    const before = await columnsOf('shops');
    for (const verb of ['apply', 'lint']) {
      const result = await cli(runner, verb, dir, '--schema', 'shop_state');
      expect(result.code).toBe(2);
      expect(result.errors).toContain(`rename-shop-country.yaml: role "${runner}" lacks REFERENCES on table "public"."countries"`);
      expect(result.errors).toContain(`GRANT REFERENCES ("code") ON "public"."countries" TO "${runner}"`);
      // lint checks every plan; so does apply, since the two renames share no column and neither waits for the other.
      expect(result.errors).toContain(`rename-shop-name.yaml: role "${runner}" lacks ownership of table "public"."visits" (owned by "${stranger}")`);
    }
    expect(await columnsOf('shops')).toEqual(before);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'shop_state'::regnamespace`)).toEqual([{ n: 0 }]);
  });
});

describe('a plan in flight', () => {
  it('is refused before the next phase when a privilege it needs was taken away, and stays movable', async () => {
    await table('in_flight');
    await db.sql(`CREATE SCHEMA flight_state AUTHORIZATION "${runner}"`);
    const dir = await splitPlan('split-in-flight', 'in_flight');
    const run = (verb: string, ...args: string[]): Promise<CliResult> => cli(runner, verb, dir, ...args, '--schema', 'flight_state');
    expect((await run('apply', '--phase', 'expand')).code).toBe(0);

    await db.sql(`REVOKE CREATE ON SCHEMA flight_state FROM "${runner}"`);
    const refused = await run('apply');
    expect(refused.code).toBe(2);
    expect(refused.errors).toContain(
      `role "${runner}" lacks CREATE on schema "flight_state", needed to create the trigger function and the expression functions in dual-write`,
    );
    expect(refused.errors).toContain(`GRANT CREATE ON SCHEMA "flight_state" TO "${runner}"`);
    expect(await db.sql(`SELECT phase, status FROM flight_state.plans`)).toEqual([{ phase: 'expand', status: 'in_progress' }]);
    const linted = await run('lint');
    expect(linted.code).toBe(2);
    expect(linted.errors).toContain(`GRANT CREATE ON SCHEMA "flight_state" TO "${runner}"`);

    await db.sql(`GRANT CREATE ON SCHEMA flight_state TO "${runner}"`);
    expect((await run('apply', '--phase', 'backfill')).code).toBe(0);
    expect((await run('rollback', 'split-in-flight', '--phase', 'expand')).code).toBe(0);
    expect(await db.sql(`SELECT phase, status FROM flight_state.plans`)).toEqual([{ phase: null, status: 'rolled_back' }]);
  });
});

describe('a partitioned table', () => {
  it('needs ownership of every partition, named before any change', async () => {
    await db.sql(`CREATE TABLE parted (id bigint NOT NULL, full_name text, PRIMARY KEY (id)) PARTITION BY RANGE (id)`);
    await db.sql(`CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100)`);
    await db.sql(`CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (100) TO (200)`);
    await db.sql(`INSERT INTO parted SELECT g, 'First' || g || ' Last' || g FROM generate_series(1, 150) g`);
    await db.sql(`ALTER TABLE parted OWNER TO "${runner}"`);
    await db.sql(`ALTER TABLE parted_1 OWNER TO "${runner}"`);
    await db.sql(`ALTER TABLE parted_2 OWNER TO "${stranger}"`);
    await db.sql(`CREATE SCHEMA parted_state AUTHORIZATION "${runner}"`);
    const dir = await splitPlan('split-parted', 'parted');
    for (const verb of ['apply', 'lint']) {
      const result = await cli(runner, verb, dir, '--schema', 'parted_state');
      expect(result.code).toBe(2);
      expect(result.errors).toContain(`role "${runner}" lacks ownership of table "public"."parted_2" (owned by "${stranger}")`);
      expect(result.errors).not.toContain('"public"."parted_1"');
    }
    expect(await columnsOf('parted')).toEqual(['id', 'full_name']);
  });
});
