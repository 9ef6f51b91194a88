import { beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../src/index.js';
import { inconsistentRows, runnerBackend, splitPlanYaml, waitFor } from '../helpers/backfill.js';
import { runCli, startCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, planDir } from '../helpers/fixtures.js';

/**
 * A partitioned table is backfilled one leaf partition at a time, each on
 * its own key index up to its own upper key, the checkpoint naming the
 * partition it is in; a runner killed inside a partition resumes inside that
 * partition, neither skipping nor repeating a row.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

const GUARDS = '{ lock_timeout: 5s, statement_timeout: 20s, retries: 2 }';

interface Checkpoint {
  partition: string | null;
  last_key: string[] | null;
  rows_done: number;
  finished: boolean;
  partitions: { schema: string; name: string; upperKey: string[] | null }[] | null;
}

async function checkpoint(plan: string): Promise<Checkpoint | undefined> {
  const rows = await db.sql<Checkpoint>(
    `SELECT partition, last_key, rows_done::int AS rows_done, finished_at IS NOT NULL AS finished, partitions FROM pgshift.backfill WHERE plan = $1`,
    [plan],
  );
  return rows[0];
}

describe('backfill of a partitioned table', () => {
  it('walks the leaf partitions one at a time (sub-partitions and an empty one included) and resumes inside the right one after a kill', async () => {
    // Four leaves of 1,000 rows each (one of them below a sub-partitioned partition) and an empty leaf.
    await db.sql(`CREATE TABLE pt (id bigint NOT NULL, region text NOT NULL, full_name text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`);
    await db.sql(`CREATE TABLE pt_eu PARTITION OF pt FOR VALUES IN ('eu')`);
    await db.sql(`CREATE TABLE pt_us PARTITION OF pt FOR VALUES IN ('us')`);
    await db.sql(`CREATE TABLE pt_ap PARTITION OF pt FOR VALUES IN ('as', 'oc') PARTITION BY LIST (region)`);
    await db.sql(`CREATE TABLE pt_ap_as PARTITION OF pt_ap FOR VALUES IN ('as')`);
    await db.sql(`CREATE TABLE pt_ap_oc PARTITION OF pt_ap FOR VALUES IN ('oc')`);
    await db.sql(`CREATE TABLE pt_af PARTITION OF pt FOR VALUES IN ('af')`);
    await db.sql(
      `INSERT INTO pt (id, region, full_name)
       SELECT g, (ARRAY['eu', 'us', 'as', 'oc'])[1 + (g % 4)], 'First' || g || ' Last' || g FROM generate_series(1, 4000) g`,
    );
    const name = 'split-pt';
    const yaml = splitPlanYaml(name, 'public.pt', '{ batch_size: 200, pause: 250ms, target_batch_ms: 0 }', GUARDS);
    const dir = await planDir({ [`${name}.yaml`]: yaml });
    expect((await apply([plan(yaml)], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const env = { DATABASE_URL: db.url, PGSHIFT_LOG_LEVEL: 'info' };

    const run = startCli(['plan', 'apply', name, '--phase', 'backfill', '--dir', dir], env);
    // Kill it in the middle of the second partition walked, between two of its batches.
    let order: string[] = [];
    const before = await waitFor('the walk to be inside its second partition', async () => {
      const cp = await checkpoint(name);
      if (!cp?.partitions) return undefined;
      order = cp.partitions.map((p) => `${p.schema}.${p.name}`);
      const second = order.filter((p) => p !== 'public.pt_af')[1];
      return cp.partition === second && cp.last_key !== null && cp.rows_done > 1_000 ? cp : undefined;
    });
    run.child.kill('SIGKILL');
    await run.done;
    await waitFor('the killed runner backend to end', async () => (await runnerBackend(db)) === undefined);

    // Every leaf, sub-partition's included, with its own upper key; the empty one has none.
    expect([...order].sort()).toEqual(['public.pt_af', 'public.pt_ap_as', 'public.pt_ap_oc', 'public.pt_eu', 'public.pt_us']);
    const uppers = Object.fromEntries(before.partitions!.map((p) => [p.name, p.upperKey]));
    expect(uppers).toEqual({ pt_af: null, pt_ap_as: ['3998', 'as'], pt_ap_oc: ['3999', 'oc'], pt_eu: ['4000', 'eu'], pt_us: ['3997', 'us'] });
    // The first partition is wholly done, the second partly, the others untouched.
    const filled = async (leaf: string): Promise<number> =>
      (await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${leaf} WHERE first_name IS NOT NULL`))[0]!.n;
    const after = (await checkpoint(name))!;
    const walked = order.filter((p) => p !== 'public.pt_af');
    expect(after.partition).toBe(walked[1]);
    expect(await filled(walked[0]!)).toBe(1_000);
    expect(await filled(walked[1]!)).toBe(after.rows_done - 1_000);
    expect(await filled(walked[2]!)).toBe(0);
    // The checkpoint's key lies in the partition it names.
    expect(after.last_key![1]).toBe(walked[1]!.replace('public.pt_', '').replace('ap_', ''));

    const resumed = await runCli(['plan', 'apply', name, '--phase', 'backfill', '--dir', dir], env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(
      `resuming ${name} backfill in partition ${after.partition} at key ${after.last_key!.join(', ')} (${after.rows_done} of ~4000 rows done)`,
    );
    expect(await checkpoint(name)).toMatchObject({ rows_done: 4_000, finished: true });
    for (const leaf of walked) expect(await filled(leaf)).toBe(1_000);
    expect(await inconsistentRows(db, 'pt')).toBe(0);
    // The final check read only what changed since its batch: nothing.
    expect(resumed.stderr).toMatch(/verify read 0 rows changed since their batch/);
  });

  it('with several workers walks partitions at once, each a range with its own checkpoint, and resumes each after a kill', async () => {
    await db.sql(`CREATE TABLE pw (id bigint NOT NULL, region text NOT NULL, full_name text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`);
    for (const r of ['eu', 'us', 'as', 'oc', 'af']) await db.sql(`CREATE TABLE pw_${r} PARTITION OF pw FOR VALUES IN ('${r}')`);
    await db.sql(
      `INSERT INTO pw (id, region, full_name)
       SELECT g, (ARRAY['eu', 'us', 'as', 'oc'])[1 + (g % 4)], 'First' || g || ' Last' || g FROM generate_series(1, 4000) g`,
    );
    const name = 'split-pw';
    const yaml = splitPlanYaml(name, 'public.pw', '{ batch_size: 200, pause: 250ms, target_batch_ms: 0, workers: 2 }', GUARDS);
    const dir = await planDir({ [`${name}.yaml`]: yaml });
    expect((await apply([plan(yaml)], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const env = { DATABASE_URL: db.url, PGSHIFT_LOG_LEVEL: 'info' };
    type Range = { worker: number; partition: string; last_key: string[] | null; rows_done: number; finished: boolean };
    const ranges = (): Promise<Range[]> =>
      db.sql<Range>(
        `SELECT worker, partition, last_key, rows_done::int AS rows_done, finished_at IS NOT NULL AS finished
           FROM pgshift.backfill_ranges WHERE plan = $1 ORDER BY worker`,
        [name],
      );
    const filled = async (leaf: string): Promise<number> =>
      (await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${leaf} WHERE first_name IS NOT NULL`))[0]!.n;

    const run = startCli(['plan', 'apply', name, '--phase', 'backfill', '--dir', dir], env);
    // Two partitions under way at once, on two worker connections.
    await waitFor('two partitions walked at once', async () => (await ranges()).filter((r) => r.rows_done >= 400 && !r.finished).length === 2);
    const connected = await db.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'pgshift worker %'`,
    );
    expect(connected[0]!.n).toBe(2);
    run.child.kill('SIGKILL');
    await run.done;
    await waitFor('the killed runner backends to end', async () => (await runnerBackend(db)) === undefined);

    // One range per non-empty leaf (the empty one has none); each checkpoint committed with its batches.
    const before = await ranges();
    expect(before.map((r) => r.partition).sort()).toEqual(['public.pw_as', 'public.pw_eu', 'public.pw_oc', 'public.pw_us']);
    for (const r of before) expect(await filled(r.partition)).toBe(r.rows_done);
    const open = before.filter((r) => !r.finished);

    const resumed = await runCli(['plan', 'apply', name, '--phase', 'backfill', '--dir', dir], env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(
      `resuming ${name} backfill with 2 workers at keys ${open.map((r) => `${r.partition} ${r.last_key?.join(', ') ?? '(start)'}`).join('; ')}`,
    );
    const after = await ranges();
    expect(after.every((r) => r.finished && r.rows_done === 1_000)).toBe(true);
    for (const r of after) expect(await filled(r.partition)).toBe(1_000);
    expect(await checkpoint(name)).toMatchObject({ rows_done: 4_000, finished: true });
    expect(await inconsistentRows(db, 'pw')).toBe(0);
    expect(resumed.stderr).toMatch(/verify read 0 rows changed since their batch/);
  });
});
