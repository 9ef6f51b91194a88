import { beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../src/index.js';
import { inconsistentRows, runnerBackend, splitPlanYaml, waitFor } from '../helpers/backfill.js';
import { runCli, startCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, planDir } from '../helpers/fixtures.js';

/**
 * `backfill.workers`: the key range is cut into disjoint ranges walked at
 * once, each by its own connection with its own checkpoint committed with
 * its batch; a killed run resumes every range where its checkpoint is,
 * neither skipping nor repeating a row.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

const GUARDS = '{ lock_timeout: 5s, statement_timeout: 20s, retries: 2 }';

interface Range {
  worker: number;
  lower_key: string[] | null;
  upper_key: string[];
  last_key: string[] | null;
  rows_done: number;
  finished: boolean;
}

async function ranges(name: string): Promise<Range[]> {
  return db.sql<Range>(
    `SELECT worker, lower_key, upper_key, last_key, rows_done::int AS rows_done, finished_at IS NOT NULL AS finished
       FROM pgshift.backfill_ranges WHERE plan = $1 ORDER BY worker`,
    [name],
  );
}

/** Rows of `table` with the new side filled, whose key lies in the range. */
async function filledIn(table: string, r: Range): Promise<number> {
  const rows = await db.sql<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${table} WHERE first_name IS NOT NULL AND ($1::int8 IS NULL OR id > $1::int8) AND id <= $2::int8`,
    [r.lower_key?.[0] ?? null, r.upper_key[0]],
  );
  return rows[0]!.n;
}

describe('backfill with several workers', () => {
  it('walks disjoint key ranges at once, each with its own checkpoint, and resumes each where it was after a kill', async () => {
    const ROWS = 30_000;
    await db.sql(`CREATE TABLE wk (id bigserial PRIMARY KEY, full_name text, email text)`);
    await db.sql(`INSERT INTO wk (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, ${ROWS}) g`);
    await db.sql(`ANALYZE wk`);
    const name = 'split-wk';
    const yaml = splitPlanYaml(name, 'public.wk', '{ batch_size: 500, pause: 200ms, target_batch_ms: 0, workers: 3 }', GUARDS);
    const dir = await planDir({ [`${name}.yaml`]: yaml });
    expect((await apply([plan(yaml)], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const env = { DATABASE_URL: db.url, PGSHIFT_LOG_LEVEL: 'info' };

    const run = startCli(['plan', 'apply', name, '--phase', 'backfill', '--dir', dir], env);
    // Three worker connections at once, and every range under way.
    await waitFor('three workers connected', async () => {
      const n = await db.sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'pgshift worker %'`,
      );
      return n[0]!.n === 3;
    });
    await waitFor('every range under way', async () => {
      const r = await ranges(name);
      return r.length === 3 && r.every((x) => x.rows_done >= 1_000);
    });
    run.child.kill('SIGKILL');
    await run.done;
    await waitFor('the killed runner backends to end', async () => (await runnerBackend(db)) === undefined);

    const before = await ranges(name);
    // Disjoint and covering: each starts after the previous one's end, the first from the start, the last at the upper key.
    expect(before[0]!.lower_key).toBeNull();
    expect(before[1]!.lower_key).toEqual(before[0]!.upper_key);
    expect(before[2]!.lower_key).toEqual(before[1]!.upper_key);
    expect(before[2]!.upper_key).toEqual([String(ROWS)]);
    // The sample cuts the table in about equal thirds.
    for (const r of before) {
      const size = Number(r.upper_key[0]) - Number(r.lower_key?.[0] ?? 0);
      expect(size).toBeGreaterThan(ROWS / 6);
    }
    // Each checkpoint committed with its batches: exactly the rows it counts are filled in its range.
    for (const r of before) {
      expect(r.finished).toBe(false);
      expect(await filledIn('wk', r)).toBe(r.rows_done);
    }
    const total = (await db.sql<{ n: number }>(`SELECT rows_done::int AS n FROM pgshift.backfill WHERE plan = $1`, [name]))[0]!.n;
    expect(total).toBe(before.reduce((a, r) => a + r.rows_done, 0));

    const resumed = await runCli(['plan', 'apply', name, '--phase', 'backfill', '--dir', dir, '--json'], env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`resuming ${name} backfill with 3 workers at keys ${before.map((r) => r.last_key!.join(', ')).join('; ')}`);
    const after = await ranges(name);
    expect(after.every((r) => r.finished)).toBe(true);
    for (const r of after) {
      expect(r.rows_done).toBe(Number(r.upper_key[0]) - Number(r.lower_key?.[0] ?? 0));
      expect(await filledIn('wk', r)).toBe(r.rows_done);
    }
    expect((await db.sql<{ n: number }>(`SELECT rows_done::int AS n FROM pgshift.backfill WHERE plan = $1`, [name]))[0]!.n).toBe(ROWS);
    expect(await inconsistentRows(db, 'wk')).toBe(0);
    // Progress sums the workers, and ends at every row.
    const last = resumed.lines.filter((l) => l.event === 'backfill_progress').at(-1);
    expect(last).toMatchObject({ done: ROWS, finished: true });
    // The final check read only what changed since its batch: nothing.
    expect(resumed.stderr).toMatch(/verify read 0 rows changed since their batch/);
  });
});
