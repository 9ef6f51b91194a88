import { beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../src/index.js';
import { splitPlanYaml } from '../helpers/backfill.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, planDir } from '../helpers/fixtures.js';

/**
 * What the operator sees through the CLI: JSON progress events while the
 * backfill runs, done/total in `status`, and `verify` finding a row that was
 * changed behind the trigger's back (exit 4, with its key), in keyset batches
 * across the whole table.
 */

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;
const NAME = 'split-people';
const ROWS = 60_000;

beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(`CREATE TABLE people (id bigserial PRIMARY KEY, full_name text, email text)`);
  await db.sql(`INSERT INTO people (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, ${ROWS}) g`);
  const yaml = splitPlanYaml(
    NAME,
    'public.people',
    '{ batch_size: 1000, pause: 0ms, target_batch_ms: 20 }',
    '{ lock_timeout: 1s, statement_timeout: 10s, retries: 2 }',
  );
  dir = await planDir({ [`${NAME}.yaml`]: yaml });
  env = { DATABASE_URL: db.url };
  expect((await apply([plan(yaml)], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
});

/** Change a row's new side without the trigger noticing, as a buggy script or a manual fix might. */
async function tamper(sql: string): Promise<void> {
  const c = await db.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SELECT set_config('pgshift.backfill', 'on', true)`);
    await c.query(sql);
    await c.query('COMMIT');
  } finally {
    await c.end();
  }
}

describe('backfill through the CLI', () => {
  it('prints JSON progress events and a final one, and status shows done/total', async () => {
    const r = await runCli(['plan', 'apply', NAME, '--phase', 'backfill', '--dir', dir, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const events = r.lines.filter((l) => l.event === 'backfill_progress');
    expect(events.length).toBeGreaterThanOrEqual(1);
    const last = events.at(-1)!;
    expect(last).toMatchObject({ plan: NAME, done: ROWS, total: ROWS, percent: 100, finished: true, eta_seconds: 0, waiting: null });
    expect(last.rows_per_second).toBeGreaterThan(0);
    expect(r.lines.find((l) => l.event === 'apply')).toMatchObject({ plan: NAME, to: 'backfill', ok: true });

    const s = await runCli(['plan', 'status', NAME, '--dir', dir, '--json'], env);
    expect(s.code).toBe(0);
    expect(s.lines[0]).toEqual([
      expect.objectContaining({ plan: NAME, phase: 'backfill', backfill: { done: ROWS, total: ROWS, finished: true, rowsPerSecond: null, etaSeconds: null } }),
    ]);
  });

  it('ANALYZEd the table after the backfill, so the new columns have statistics', async () => {
    const stats = await db.sql<{ attname: string }>(
      `SELECT attname FROM pg_stats WHERE tablename = 'people' AND attname IN ('first_name', 'last_name') ORDER BY 1`,
    );
    expect(stats.map((s) => s.attname)).toEqual(['first_name', 'last_name']);
  });

  it('verify finds nothing on a consistent table (exit 0)', async () => {
    const r = await runCli(['plan', 'verify', NAME, '--dir', dir, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines[0]).toMatchObject({ event: 'verify', differing: 0, sample_keys: [] });
  });

  it('verify finds tampered rows in every keyset batch, NULL-safely, and exits 4 with sample keys', async () => {
    // Rows far apart, so more than one verify batch (50,000 rows) finds something; one becomes NULL where a value belongs.
    await tamper(`UPDATE people SET first_name = 'Tampered' WHERE id IN (42, 55555)`);
    await tamper(`UPDATE people SET last_name = NULL WHERE id = 7`);
    const r = await runCli(['plan', 'verify', NAME, '--dir', dir, '--json'], env);
    expect(r.code).toBe(4);
    expect(r.lines[0]).toMatchObject({ event: 'verify', differing: 3, sample_keys: [['7'], ['42'], ['55555']] });
    // Re-running the backfill is not how to repair: its checkpoint is finished. The rows are put right by hand.
    await tamper(
      `UPDATE people SET first_name = split_part(full_name, ' ', 1), last_name = nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name) WHERE id IN (7, 42, 55555)`,
    );
    expect((await runCli(['plan', 'verify', NAME, '--dir', dir], env)).code).toBe(0);
  });
});
