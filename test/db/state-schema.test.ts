import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { STATE_SCHEMA_VERSION } from '../../src/state/migrations.js';
import { ensureStateSchema, stateSchemaVersion } from '../../src/state/schema.js';
import { describeDatabase } from '../helpers/catalog.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, SPLIT_YAML, USERS_TABLE } from '../helpers/fixtures.js';

/**
 * The state schema is versioned: a newer pgshift upgrades the tables an
 * older one made, in place and keeping their rows; an older pgshift refuses
 * a newer schema. Version 1 is the DDL pgshift 0.1.0 ran, kept verbatim as a
 * fixture, so the test sees exactly what an existing installation has.
 */

const V1_DDL = new URL('../fixtures/state-schema-v1.sql', import.meta.url);

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(200));
  await db.sql(await readFile(V1_DDL, 'utf8'));
  // A plan 0.1.0 finished on another table: its row and history must survive the upgrade.
  await db.sql(`INSERT INTO pgshift.plans (name, table_name, kind, checksum, phase, status, facts)
                VALUES ('old-rename', 'public.accounts', 'rename', repeat('a', 64), 'contract', 'complete', '{}')`);
  await db.sql(`INSERT INTO pgshift.events (plan, phase, action, outcome, started_at, actor, version)
                VALUES ('old-rename', 'contract', 'apply', 'succeeded', now() - interval '1 day', 'ops@ci', '0.1.0')`);
  // A plan 0.1.0 left in flight: it knew no list of its columns, so the upgrade claims its whole table for it.
  await db.sql(`INSERT INTO pgshift.plans (name, table_name, kind, checksum, phase, status, facts)
                VALUES ('old-split', 'public.ledger', 'split', repeat('b', 64), 'expand', 'in_progress',
                        '{"columns": [{"name": "id"}, {"name": "entry"}], "newTypes": {"entry_day": "date"}}')`);
  dir = await planDir({ 'split-users-full-name.yaml': SPLIT_YAML });
});

const args = (verb: string, ...rest: string[]): string[] => ['plan', verb, ...rest, '--dir', dir, '--database-url', db.url, '--json'];

describe('state schema versions', () => {
  it('reads a version 1 schema without changing it', async () => {
    expect(await stateSchemaVersion(db.client, 'pgshift')).toBe(1);
    const before = await describeDatabase(db);
    const status = await runCli(args('status'));
    expect(status.code).toBe(0);
    const rows = status.lines[0] as unknown as { plan: string; status: string }[];
    expect(rows.map((r) => [r.plan, r.status])).toEqual(
      expect.arrayContaining([
        ['old-rename', 'complete'],
        ['split-users-full-name', 'not_started'],
      ]),
    );
    expect(await describeDatabase(db)).toEqual(before);
    expect(await db.sql(`SELECT to_regclass('pgshift.schema_version') AS t`)).toEqual([{ t: null }]);
  });

  it('upgrades version 1 in place on the first write, keeping every row, and records the version', async () => {
    const result = await runCli(args('apply', '--phase', 'dual-write'));
    expect(result.errors).toBe('');
    expect(result.code).toBe(0);
    expect(await stateSchemaVersion(db.client, 'pgshift')).toBe(STATE_SCHEMA_VERSION);
    expect(await db.sql(`SELECT version, written_by FROM pgshift.schema_version`)).toEqual([
      { version: STATE_SCHEMA_VERSION, written_by: expect.stringMatching(/^\d+\.\d+\.\d+/) },
    ]);
    expect(await db.sql(`SELECT name, status, phase FROM pgshift.plans ORDER BY name`)).toEqual([
      { name: 'old-rename', status: 'complete', phase: 'contract' },
      { name: 'old-split', status: 'in_progress', phase: 'expand' },
      { name: 'split-users-full-name', status: 'in_progress', phase: 'dual-write' },
    ]);
    // Version 10's claims: the plan started now claims its own columns, the one from before every column its table had.
    expect(await db.sql(`SELECT plan, table_name, column_name FROM pgshift.plan_columns ORDER BY plan, column_name`)).toEqual([
      { plan: 'old-split', table_name: 'public.ledger', column_name: 'entry' },
      { plan: 'old-split', table_name: 'public.ledger', column_name: 'entry_day' },
      { plan: 'old-split', table_name: 'public.ledger', column_name: 'id' },
      { plan: 'split-users-full-name', table_name: 'public.users', column_name: 'first_name' },
      { plan: 'split-users-full-name', table_name: 'public.users', column_name: 'full_name' },
      { plan: 'split-users-full-name', table_name: 'public.users', column_name: 'last_name' },
    ]);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.events WHERE plan = 'old-rename'`)).toEqual([{ n: 1 }]);
    expect(
      await db.sql(
        `SELECT to_regclass('pgshift.leases') IS NOT NULL AS leases, prosecdef AS definer FROM pg_proc WHERE oid = 'pgshift.phase(text)'::regprocedure`,
      ),
    ).toEqual([{ leases: true, definer: true }]);
    // The kind is no longer a list frozen at install time.
    const checks = await db.sql<{ conname: string }>(
      `SELECT conname FROM pg_constraint WHERE conrelid = 'pgshift.plans'::regclass AND contype = 'c' AND conname LIKE 'plans_kind%' ORDER BY 1`,
    );
    expect(checks.map((c) => c.conname)).toEqual(['plans_kind_format']);
    await db.sql(`UPDATE pgshift.plans SET kind = 'drop' WHERE name = 'old-rename'`);
    await db.sql(`UPDATE pgshift.plans SET kind = 'rename' WHERE name = 'old-rename'`);
    // Version 8: plans from before it are in the old-code gate's generation 0, started when they did.
    expect(await db.sql(`SELECT name, old_code_generation AS g, old_code_generation_at AS at FROM pgshift.plans ORDER BY name`)).toEqual([
      { name: 'old-rename', g: 0, at: null },
      { name: 'old-split', g: 0, at: null },
      { name: 'split-users-full-name', g: 0, at: null },
    ]);
    expect(await db.sql(`SELECT to_regclass('pgshift.old_code_writes') IS NOT NULL AS t`)).toEqual([{ t: true }]);
    expect(
      await db.sql(`SELECT attname FROM pg_attribute WHERE attrelid = 'pgshift.old_code_writes'::regclass AND attname = 'last_at' AND NOT attisdropped`),
    ).toEqual([{ attname: 'last_at' }]);
  });

  it('upgrades once when two runners start at the same moment', async () => {
    const other = await freshDatabase();
    await other.sql(await readFile(V1_DDL, 'utf8'));
    const clients = await Promise.all([other.connect(), other.connect(), other.connect()]);
    try {
      await Promise.all(clients.map((c) => ensureStateSchema(c, 'pgshift')));
      expect(await stateSchemaVersion(other.client, 'pgshift')).toBe(STATE_SCHEMA_VERSION);
      expect(await other.sql(`SELECT count(*)::int AS n FROM pgshift.schema_version`)).toEqual([{ n: 1 }]);
    } finally {
      await Promise.all(clients.map((c: pg.Client) => c.end()));
    }
  });

  it('refuses, with exit 2 and nothing changed, a schema written by a newer pgshift', async () => {
    await db.sql(`UPDATE pgshift.schema_version SET version = $1`, [STATE_SCHEMA_VERSION + 1]);
    const before = await describeDatabase(db);
    const stateBefore = await db.sql(`SELECT name, phase, status, updated_at FROM pgshift.plans ORDER BY name`);
    for (const verb of [['apply', '--phase', 'next'], ['rollback'], ['status']]) {
      const result = await runCli(args(verb[0]!, ...(verb[0] === 'status' ? [] : ['split-users-full-name']), ...verb.slice(1)));
      expect(result.code).toBe(2);
      expect(result.errors).toMatch(
        new RegExp(`"pgshift" is at version ${STATE_SCHEMA_VERSION + 1}, newer than this pgshift understands \\(${STATE_SCHEMA_VERSION}\\)`),
      );
    }
    expect(await describeDatabase(db)).toEqual(before);
    expect(await db.sql(`SELECT name, phase, status, updated_at FROM pgshift.plans ORDER BY name`)).toEqual(stateBefore);
    await db.sql(`UPDATE pgshift.schema_version SET version = $1`, [STATE_SCHEMA_VERSION]);
  });
});
