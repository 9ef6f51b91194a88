import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, verify } from '../../src/index.js';
import { objectName } from '../../src/db/ident.js';
import { capturingLogger, inconsistentRows, splitPlanYaml, waitFor } from '../helpers/backfill.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/**
 * The backfill's own batches skip the sync trigger (session_replication_role
 * = replica in their transactions) when the runner may set it and nothing
 * else on the table would be skipped; the application's writes during the
 * walk still go through it. Calls of the sync functions are counted by
 * PostgreSQL (`track_functions = pl` on this database): with the bypass they
 * are exactly the application's writes, never the backfilled rows.
 */

let db: TestDatabase;
/** A database of its own for a runner that is not a superuser: it creates pgshift's schema there. */
let rolesDb: TestDatabase;
let version: number;

async function prepare(d: TestDatabase): Promise<void> {
  await d.sql(`ALTER DATABASE ${d.name} SET track_functions = 'pl'`);
  // A plpgsql function nothing else calls: once its latest call is counted, every backend that ended before it had its
  // counts flushed (at exit, before it leaves pg_stat_activity).
  await d.sql(`CREATE FUNCTION public.stats_sentinel() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$`);
  await d.sql(`CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.touched := OLD.touched + 1; RETURN NEW; END $$`);
  await d.sql(`CREATE TABLE orgs (id int PRIMARY KEY)`);
  await d.sql(`INSERT INTO orgs VALUES (1)`);
}

beforeAll(async () => {
  db = await freshDatabase();
  rolesDb = await freshDatabase();
  await prepare(db);
  await prepare(rolesDb);
  version = Number((await db.sql<{ v: string }>(`SELECT current_setting('server_version_num') AS v`))[0]!.v);
});

const ROWS = 3_000;
const GUARDS = '{ lock_timeout: 1s, statement_timeout: 10s, retries: 3 }';
const BACKFILL = '{ batch_size: 200, pause: 0ms, target_batch_ms: 0 }';

async function table(name: string, extra = '', d = db): Promise<void> {
  await d.sql(`CREATE TABLE ${name} (id bigserial PRIMARY KEY, full_name text, org_id int REFERENCES orgs${extra})`);
  await d.sql(`INSERT INTO ${name} (full_name, org_id) SELECT 'First' || g || ' Last' || g, 1 FROM generate_series(1, ${ROWS}) g`);
}

const sentinelCalls = new Map<TestDatabase, number>();

/** How often each of the plan's sync functions was called, once every backend that ended before now had its counts flushed. */
async function syncCalls(d: TestDatabase, planName: string): Promise<{ update: number; insert: number }> {
  await waitFor('the runner to disconnect', async () => {
    const rows = await d.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
    );
    return rows[0]!.n === 0;
  });
  const sentinel = await d.connect();
  await sentinel.query(`SELECT public.stats_sentinel()`);
  await sentinel.end();
  const expected = (sentinelCalls.get(d) ?? 0) + 1;
  sentinelCalls.set(d, expected);
  await waitFor('the sentinel call to be counted', async () => {
    await d.sql(`SELECT pg_stat_clear_snapshot()`);
    const rows = await d.sql<{ calls: number }>(`SELECT calls::int AS calls FROM pg_stat_user_functions WHERE funcname = 'stats_sentinel'`);
    return (rows[0]?.calls ?? 0) >= expected;
  });
  const rows = await d.sql<{ funcname: string; calls: number }>(
    `SELECT funcname, calls::int AS calls FROM pg_stat_user_functions WHERE schemaname = 'pgshift' AND funcname = ANY ($1)`,
    [[objectName(planName, 'sync'), objectName(planName, 'sync_insert')]],
  );
  const calls = (fn: string): number => rows.find((r) => r.funcname === fn)?.calls ?? 0;
  return { update: calls(objectName(planName, 'sync')), insert: calls(objectName(planName, 'sync_insert')) };
}

/** Old code updating random rows (each through the sync trigger) on a connection of `url`'s until stopped. */
function oldCodeUpdates(url: string, tableName: string): { stop(): Promise<number> } {
  let running = true;
  let updates = 0;
  const loop = (async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (let i = 0; running; i++) {
        await client.query(`UPDATE ${tableName} SET full_name = $2 WHERE id = $1`, [1 + ((i * 7919) % ROWS), `Changed${i} Again${i}`]);
        updates++;
      }
    } finally {
      await client.end();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return updates;
    },
  };
}

/** Dual-write, then backfill with old code updating throughout; the log's messages and the sync functions' calls. */
async function backfillUnderWrites(
  name: string,
  d = db,
  url = d.url,
): Promise<{ messages: string[]; updates: number; calls: { update: number; insert: number } }> {
  const p = plan(splitPlanYaml(name.replaceAll('_', '-'), `public.${name}`, BACKFILL, GUARDS));
  expect((await apply([p], 'dual-write', { databaseUrl: url }))[0]!.error).toBeUndefined();
  const before = await syncCalls(d, p.name);
  const writers = oldCodeUpdates(d.url, name);
  await waitFor('old code to write', async () => (await d.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${name} WHERE first_name IS NOT NULL`))[0]!.n > 0);
  const { log, messages } = capturingLogger();
  const [outcome] = await apply([p], 'backfill', { databaseUrl: url, log });
  const updates = await writers.stop();
  expect(outcome!.error).toBeUndefined();
  expect(await inconsistentRows(d, name)).toBe(0);
  expect((await verify(p, { databaseUrl: url })).differing).toBe(0);
  const after = await syncCalls(d, p.name);
  return { messages: messages(), updates, calls: { update: after.update - before.update, insert: after.insert - before.insert } };
}

describe('the backfill and the sync trigger', () => {
  it('skips the trigger for its own batches, not for the application writing meanwhile, beside foreign keys it does not write', async () => {
    await table('bypassed');
    await db.sql(`CREATE TABLE bypassed_refs (id int PRIMARY KEY, user_id bigint REFERENCES bypassed)`);
    await db.sql(`INSERT INTO bypassed_refs SELECT g, g FROM generate_series(1, 10) g`);
    const { messages, updates, calls } = await backfillUnderWrites('bypassed');
    expect(messages).toContain('backfill batches skip the sync trigger (session_replication_role = replica in their transactions)');
    expect(updates).toBeGreaterThan(0);
    // Every application update went through the trigger, and not one of the backfill's ROWS rows did.
    expect(calls).toEqual({ update: updates, insert: 0 });
  });

  it('goes through the trigger, and fires the table’s own trigger for every row, when the table has one', async () => {
    await table('own_trigger', ', touched int NOT NULL DEFAULT 0');
    await db.sql(`CREATE TRIGGER touch BEFORE UPDATE ON own_trigger FOR EACH ROW EXECUTE FUNCTION public.touch()`);
    const { messages, updates, calls } = await backfillUnderWrites('own_trigger');
    expect(messages.some((m) => m.startsWith('backfill batches go through the sync trigger: the table has triggers or rules'))).toBe(true);
    // The backfill's batches wrote every row that old code had not synced first, each through both triggers.
    const untouched = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM own_trigger WHERE touched = 0`);
    expect(untouched[0]!.n).toBe(0);
    expect(calls.update).toBeGreaterThan(updates);
  });

  it('keeps the bypass beside a trigger enabled ALWAYS, which fires for every batch all the same', async () => {
    await table('always_trigger', ', touched int NOT NULL DEFAULT 0');
    await db.sql(`CREATE TRIGGER touch BEFORE UPDATE ON always_trigger FOR EACH ROW EXECUTE FUNCTION public.touch()`);
    await db.sql(`ALTER TABLE always_trigger ENABLE ALWAYS TRIGGER touch`);
    const { messages, updates, calls } = await backfillUnderWrites('always_trigger');
    expect(messages).toContain('backfill batches skip the sync trigger (session_replication_role = replica in their transactions)');
    expect((await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM always_trigger WHERE touched = 0`))[0]!.n).toBe(0);
    expect(calls).toEqual({ update: updates, insert: 0 });
  });

  it('lets a foreign key on a new column check every row the batches write', async () => {
    await table('fk_new');
    const p = plan(splitPlanYaml('fk-new', 'public.fk_new', BACKFILL, GUARDS));
    expect((await apply([p], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    // Only first names up to First2999 exist: row 3000's batch must fail the key's check, not skip it.
    await db.sql(`CREATE TABLE first_names (name text PRIMARY KEY)`);
    await db.sql(`INSERT INTO first_names SELECT 'First' || g FROM generate_series(1, ${ROWS - 1}) g`);
    await db.sql(`ALTER TABLE fk_new ADD CONSTRAINT fk_new_first FOREIGN KEY (first_name) REFERENCES first_names`);
    const { log, messages } = capturingLogger();
    const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url, log });
    expect(messages()).toContain(
      'backfill batches go through the sync trigger: the table has triggers or rules that session_replication_role = replica would skip',
    );
    expect(String(outcome!.error?.message)).toMatch(/fk_new_first/);
    expect((await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM fk_new WHERE first_name = 'First${ROWS}'`))[0]!.n).toBe(0);
  });
});

describe('a runner that is not a superuser', () => {
  const runner = `bypass_runner_${process.pid}`;
  let runnerUrl: string;
  beforeAll(async () => {
    await rolesDb.sql(`CREATE ROLE ${runner} LOGIN PASSWORD 'pw' NOSUPERUSER`);
    await rolesDb.sql(`GRANT CREATE ON DATABASE ${rolesDb.name} TO ${runner}`);
    await rolesDb.sql(`GRANT USAGE ON SCHEMA public TO ${runner}`);
    await rolesDb.sql(`GRANT SELECT, REFERENCES ON orgs TO ${runner}`);
    const url = new URL(rolesDb.url);
    url.username = runner;
    url.password = 'pw';
    runnerUrl = url.toString();
  });
  afterAll(async () => {
    // Roles are cluster-wide: drop what it owns and it with the test.
    await rolesDb.sql(`DROP OWNED BY ${runner} CASCADE`).catch(() => undefined);
    await rolesDb.sql(`DROP ROLE IF EXISTS ${runner}`).catch(() => undefined);
  });

  it('keeps the trigger path, the application still synced', async () => {
    await table('owned', '', rolesDb);
    await rolesDb.sql(`ALTER TABLE owned OWNER TO ${runner}`);
    const { messages, updates, calls } = await backfillUnderWrites('owned', rolesDb, runnerUrl);
    expect(messages).toContain('backfill batches go through the sync trigger: the runner may not set session_replication_role');
    expect(calls.update).toBeGreaterThan(updates);
  });

  it('skips the trigger once granted SET on session_replication_role (PostgreSQL 15+)', async (ctx) => {
    if (version < 150000) ctx.skip();
    await rolesDb.sql(`GRANT SET ON PARAMETER session_replication_role TO ${runner}`);
    try {
      await table('granted', '', rolesDb);
      await rolesDb.sql(`ALTER TABLE granted OWNER TO ${runner}`);
      const { messages, updates, calls } = await backfillUnderWrites('granted', rolesDb, runnerUrl);
      expect(messages).toContain('backfill batches skip the sync trigger (session_replication_role = replica in their transactions)');
      expect(calls).toEqual({ update: updates, insert: 0 });
    } finally {
      await rolesDb.sql(`REVOKE SET ON PARAMETER session_replication_role FROM ${runner}`);
    }
  });
});
