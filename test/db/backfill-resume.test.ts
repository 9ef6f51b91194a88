import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../src/index.js';
import { checkpoint, inconsistentRows, runnerBackend, splitPlanYaml, waitFor } from '../helpers/backfill.js';
import { runCli, startCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, planDir } from '../helpers/fixtures.js';

/**
 * A runner killed (SIGKILL, no chance to clean up) at any instant of the
 * backfill resumes where its last committed batch ended: no row is skipped,
 * none counted twice, and the resumed run says where it picks up.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

const GUARDS = '{ lock_timeout: 30s, statement_timeout: 60s, retries: 2 }';

/** A table of `rows` users with its own split plan (in its own plan directory) applied to dual-write. */
async function setup(table: string, rows: number, backfill: string): Promise<{ name: string; dir: string; env: Record<string, string> }> {
  await db.sql(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, full_name text, email text)`);
  await db.sql(`INSERT INTO ${table} (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, ${rows}) g`);
  const name = `split-${table.replaceAll('_', '-')}`;
  const yaml = splitPlanYaml(name, `public.${table}`, backfill, GUARDS);
  const dir = await planDir({ [`${name}.yaml`]: yaml });
  expect((await apply([plan(yaml)], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
  return { name, dir, env: { DATABASE_URL: db.url, PGSHIFT_LOG_LEVEL: 'info' } };
}

/**
 * Kill the CLI hard, run `meanwhile` (e.g. release a row the backend waits
 * for), and wait until its server backend has gone, so the plan lock is free.
 */
async function killRunner(run: ReturnType<typeof startCli>, meanwhile: () => Promise<void> = async () => undefined): Promise<void> {
  run.child.kill('SIGKILL');
  await run.done;
  await meanwhile();
  await waitFor('the killed runner backend to end', async () => (await runnerBackend(db)) === undefined);
}

async function resumeToEnd(name: string, dir: string, env: Record<string, string>): Promise<string> {
  const resumed = await runCli(['plan', 'apply', name, '--phase', 'backfill', '--dir', dir], env);
  expect(resumed.code, resumed.stderr).toBe(0);
  return resumed.stderr;
}

describe('backfill resume after a crash', () => {
  it('resumes after a kill in the middle of a batch, which never commits', async () => {
    // A target this long lets a batch wait for a held row up to lock_timeout (30 s) rather than one batch.
    const { name, dir, env } = await setup('mid', 5_000, '{ batch_size: 500, pause: 0ms, target_batch_ms: 15000 }');
    // The application holds a row near the middle, so one batch is certainly in flight, waiting, when we kill.
    const app = await db.connect();
    await app.query('BEGIN');
    await app.query(`SELECT * FROM mid WHERE id = 3500 FOR UPDATE`);
    const run = startCli(['plan', 'apply', name, '--phase', 'backfill', '--dir', dir], env);
    await waitFor('a batch waiting for the application', async () => (await runnerBackend(db))?.waiting);
    const before = (await checkpoint(db, name))!;
    expect(before.rows_done).toBeGreaterThan(0);
    expect(before.rows_done).toBeLessThan(3_500);
    await killRunner(run, async () => {
      await app.query('ROLLBACK');
      await app.end();
    });
    // The batch in flight rolled back with its checkpoint.
    expect(await checkpoint(db, name)).toEqual(before);
    expect((await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM mid WHERE first_name IS NOT NULL`))[0]!.n).toBe(before.rows_done);

    const stderr = await resumeToEnd(name, dir, env);
    expect(stderr).toContain(`resuming ${name} backfill at key ${before.last_key![0]} (${before.rows_done} of ~5000 rows done)`);
    expect(await checkpoint(db, name)).toMatchObject({ rows_done: 5_000, finished: true });
    expect(await inconsistentRows(db, 'mid')).toBe(0);
  });

  it('resumes after a kill between two batches', async () => {
    const { name, dir, env } = await setup('between', 5_000, '{ batch_size: 500, pause: 3s }');
    const run = startCli(['plan', 'apply', name, '--phase', 'backfill', '--dir', dir], env);
    // A batch has committed and the runner sleeps in its pause: connected, idle, no transaction open.
    await waitFor('the runner to pause after a batch', async () => {
      const cp = await checkpoint(db, name);
      const backend = await runnerBackend(db);
      return cp !== undefined && cp.rows_done > 0 && backend?.state === 'idle';
    });
    const before = (await checkpoint(db, name))!;
    await killRunner(run);
    expect(await checkpoint(db, name)).toEqual(before);
    // Pause is tuning, not part of the plan's checksum: the resumed run may go faster.
    await writeFile(path.join(dir, `${name}.yaml`), splitPlanYaml(name, 'public.between', '{ batch_size: 500, pause: 0ms }', GUARDS));
    const stderr = await resumeToEnd(name, dir, env);
    expect(stderr).toContain(`resuming ${name} backfill at key ${before.last_key![0]} (${before.rows_done} of ~5000 rows done)`);
    expect(await checkpoint(db, name)).toMatchObject({ rows_done: 5_000, finished: true });
    expect(await inconsistentRows(db, 'between')).toBe(0);
  });

  it('neither skips nor repeats a row across kills at random instants', async () => {
    const rows = 20_000;
    const { name, dir, env } = await setup('random', rows, '{ batch_size: 100, pause: 10ms, target_batch_ms: 10 }');
    let kills = 0;
    let killedLast = false;
    for (let attempt = 0; attempt < 4; attempt++) {
      const at = (await checkpoint(db, name))?.rows_done ?? -1;
      if (at >= rows) break;
      const run = startCli(['plan', 'apply', name, '--phase', 'backfill', '--dir', dir], env);
      // Once this run has committed a batch of its own, kill it a random moment later: inside a batch or between two.
      await waitFor('a batch of this run', async () => ((await checkpoint(db, name))?.rows_done ?? -1) > at || run.child.exitCode !== null);
      await sleep(Math.random() * 40);
      killedLast = run.child.exitCode === null;
      if (!killedLast) break;
      await killRunner(run);
      kills++;
    }
    expect(kills).toBeGreaterThan(0);
    const stderr = await resumeToEnd(name, dir, env);
    // A run that got to finish before its kill leaves nothing to resume.
    if (killedLast) expect(stderr).toMatch(new RegExp(`resuming ${name} backfill at key \\d+ \\(\\d+ of ~${rows} rows done\\)`));
    expect(await checkpoint(db, name)).toMatchObject({ rows_done: rows, finished: true });
    expect(await inconsistentRows(db, 'random')).toBe(0);
  });
});
