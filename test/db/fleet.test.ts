import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, SPLIT_YAML, USERS_TABLE } from '../helpers/fixtures.js';

/**
 * One command over many databases: each target keeps its own state, lock and
 * outcome; a failing target does not stop the others (unless --fail-fast);
 * one table of target × plan × phase × outcome; the exit code is the worst;
 * no password is ever printed.
 */

const PLAN = 'split-users-full-name';
/** The fleet's databases, each reached as a role with a password of its own, so the test can look for it in the output. */
let dbs: { url: string; name: string; sql: TestDatabase['sql'] }[];
let dir: string;
let tmp: string;
const ROLE = `fleet_${randomBytes(4).toString('hex')}`;
const PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
beforeAll(async () => {
  const raw = [await freshDatabase(), await freshDatabase(), await freshDatabase()];
  await raw[0]!.sql(`CREATE ROLE ${ROLE} LOGIN SUPERUSER PASSWORD '${PASSWORD}'`);
  dbs = raw.map((db) => {
    const u = new URL(db.url);
    u.username = ROLE;
    u.password = PASSWORD;
    return { url: u.toString(), name: db.name, sql: db.sql };
  });
  for (const db of dbs.slice(0, 2)) {
    await db.sql(USERS_TABLE);
    await db.sql(seedUsers(200));
  }
  // The third tenant never got the users table: the plan is invalid there.
  dir = await planDir({ [`${PLAN}.yaml`]: SPLIT_YAML });
  tmp = await mkdtemp(path.join(os.tmpdir(), 'pgshift-fleet-'));
});

const urls = (...which: number[]): string[] => which.flatMap((i) => ['--database-url', dbs[i]!.url]);
const label = (db: { url: string; name: string }): string => {
  const u = new URL(db.url);
  return `${u.username}@${u.host}/${db.name}`;
};
const phaseOf = async (db: { sql: TestDatabase['sql'] }): Promise<unknown> =>
  (await db.sql(`SELECT CASE WHEN to_regclass('pgshift.plans') IS NULL THEN NULL ELSE (SELECT phase FROM pgshift.plans) END AS p`))[0]!.p;

interface Row {
  target: string;
  plan: string;
  phase: string | null;
  outcome: string;
  exitCode: number;
}

describe('fleet', () => {
  it('applies on every target, one failing without stopping the others, and exits with the worst outcome', async () => {
    const result = await runCli(['plan', 'apply', PLAN, '--phase', 'dual-write', '--dir', dir, ...urls(0, 1, 2), '--json']);
    expect(result.code).toBe(2);
    const rows = result.lines[0] as unknown as Row[];
    expect(rows.map((r) => [r.target, r.plan, r.phase, r.exitCode])).toEqual([
      [label(dbs[0]!), PLAN, 'dual-write', 0],
      [label(dbs[1]!), PLAN, 'dual-write', 0],
      [label(dbs[2]!), PLAN, null, 2],
    ]);
    expect(rows[0]!.outcome).toBe('did expand, dual-write');
    expect(rows[2]!.outcome).toMatch(/failed: .*table "public\.users" does not exist/);
    expect(await phaseOf(dbs[0]!)).toBe('dual-write');
    expect(await phaseOf(dbs[1]!)).toBe('dual-write');
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);
  });

  it('reads targets from a file (URLs and libpq service names) and prints one table', async () => {
    const u = new URL(dbs[1]!.url);
    const services = path.join(tmp, 'pg_service.conf');
    await writeFile(
      services,
      `[tenant-b]\nhost=${u.hostname}\nport=${u.port}\nuser=${decodeURIComponent(u.username)}\npassword=${decodeURIComponent(u.password)}\ndbname=${dbs[1]!.name}\n`,
    );
    const targets = path.join(tmp, 'targets');
    await writeFile(targets, `# tenants\n${dbs[0]!.url}\n\ntenant-b   # by service name\n${dbs[2]!.url}\n`);
    const result = await runCli(['plan', 'status', PLAN, '--dir', dir, '--targets', targets, '--no-json'], { PGSERVICEFILE: services });
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^target\s+plan\s+phase\s+outcome$/);
    expect(lines.slice(2).map((l) => l.split(/\s{2,}/))).toEqual([
      [label(dbs[0]!), PLAN, 'dual-write', 'in_progress'],
      [label(dbs[1]!), PLAN, 'dual-write', 'in_progress'],
      [label(dbs[2]!), PLAN, '-', 'not_started'],
    ]);
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);
  });

  it('with --fail-fast starts no target after one fails', async () => {
    const result = await runCli(['plan', 'apply', PLAN, '--phase', 'backfill', '--dir', dir, ...urls(2, 0, 1), '--concurrency', '1', '--fail-fast', '--json']);
    expect(result.code).toBe(2);
    const rows = result.lines[0] as unknown as Row[];
    expect(rows.map((r) => [r.target, r.outcome.replace(/:.*/, '')])).toEqual([
      [label(dbs[2]!), 'failed'],
      [label(dbs[0]!), 'skipped (--fail-fast)'],
      [label(dbs[1]!), 'skipped (--fail-fast)'],
    ]);
    expect(await phaseOf(dbs[0]!)).toBe('dual-write');
  });

  it('verifies every target, and a target whose rows differ makes the exit code 4', async () => {
    expect((await runCli(['plan', 'apply', PLAN, '--phase', 'backfill', '--dir', dir, ...urls(0, 1), '--json'])).code).toBe(0);
    const clean = await runCli(['plan', 'verify', PLAN, '--dir', dir, ...urls(0, 1), '--json']);
    expect(clean.code).toBe(0);
    expect((clean.lines[0] as unknown as Row[]).map((r) => r.outcome)).toEqual(['0 row(s) differ', '0 row(s) differ']);
    await dbs[1]!.sql(`ALTER TABLE users DISABLE TRIGGER USER; UPDATE users SET last_name = 'X' WHERE id <= 2; ALTER TABLE users ENABLE TRIGGER USER`);
    const dirty = await runCli(['plan', 'verify', PLAN, '--dir', dir, ...urls(0, 1), '--json']);
    expect(dirty.code).toBe(4);
    expect((dirty.lines[0] as unknown as Row[]).map((r) => [r.target, r.outcome, r.exitCode])).toEqual([
      [label(dbs[0]!), '0 row(s) differ', 0],
      [label(dbs[1]!), '2 row(s) differ', 4],
    ]);
  });

  it('rolls back on every target', async () => {
    const result = await runCli(['plan', 'rollback', PLAN, '--phase', 'expand', '--dir', dir, ...urls(0, 1), '--json']);
    expect(result.code).toBe(0);
    expect((result.lines[0] as unknown as Row[]).map((r) => [r.target, r.phase, r.outcome])).toEqual([
      [label(dbs[0]!), null, 'did backfill, dual-write, expand'],
      [label(dbs[1]!), null, 'did backfill, dual-write, expand'],
    ]);
  });
});
