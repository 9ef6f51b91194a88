import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { apply, pause } from '../../src/index.js';
import { capturingLogger, checkpoint, inconsistentRows, waitFor } from '../helpers/backfill.js';
import { runCli, startCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, planDir, splitPlanYaml } from '../helpers/fixtures.js';

/**
 * Steering a running backfill from another process, through the state
 * schema: `pause` stops it before its next batch, `tune` changes its
 * settings from its next batch on, `resume` lets it go on; a pause holds
 * across a restart of the runner.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

/** Fixed batches of 100 rows with a pause: about 60 batches for the test to act between. */
const SLOW = '{ batch_size: 100, pause: 60ms, target_batch_ms: 0 }';

async function table(name: string, rows: number): Promise<void> {
  await db.sql(`CREATE TABLE ${name} (id bigserial PRIMARY KEY, full_name text, email text)`);
  await db.sql(`INSERT INTO ${name} (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, ${rows}) g`);
}

const rowsDone = async (name: string): Promise<number> => (await checkpoint(db, name))?.rows_done ?? 0;

describe('pause, tune and resume', () => {
  it('act on a running backfill within one batch, from a second process, and a paused walk writes no batch', async () => {
    await table('steered', 6_000);
    const yaml = splitPlanYaml('split-steered', 'public.steered', SLOW, '{ lock_timeout: 2s }');
    const dir = await planDir({ 'split-steered.yaml': yaml });
    const cli = (...args: string[]) => runCli(['plan', ...args, 'split-steered', '--dir', dir, '--database-url', db.url, '--no-json']);
    const p = plan(yaml);
    expect((await apply([p], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const { log, messages } = capturingLogger();
    const running = apply([p], 'backfill', { databaseUrl: db.url, log });
    await waitFor('500 rows walked', async () => (await rowsDone('split-steered')) >= 500);

    const paused = await cli('pause');
    expect(paused.code).toBe(0);
    expect(paused.stdout).toMatch(/split-steered: paused/);
    await waitFor('the walk to say it is paused', async () => messages().some((m) => m.includes('paused by') && m.includes('no batch is written meanwhile')));
    const held = await rowsDone('split-steered');
    const batches = messages().filter((m) => m === 'backfill batch committed').length;
    // A window many batches long: a walk that went on would have written some (only a lower bound on time is relied on).
    await sleep(1_500);
    expect(await rowsDone('split-steered')).toBe(held);
    expect(messages().filter((m) => m === 'backfill batch committed').length).toBe(batches);
    const status = await runCli(['plan', 'status', 'split-steered', '--json', '--dir', dir, '--database-url', db.url]);
    expect(status.lines[0]).toEqual([expect.objectContaining({ steering: expect.objectContaining({ paused: true, changedBy: expect.any(String) }) })]);

    const tuned = await cli('tune', '--pause', '0ms', '--target-batch-ms', '30');
    expect(tuned.code).toBe(0);
    expect(tuned.stdout).toContain('split-steered: tuned: the backfill uses these from its next batch (target_batch_ms 30, pause 0 ms)');
    // Seen while still paused: the walk reads the row at every look.
    await waitFor('the walk to take the new settings', async () => messages().some((m) => m.includes('tuned by postgres: target_batch_ms 30, pause 0 ms')));
    expect((await cli('resume')).code).toBe(0);
    const [outcome] = await running;
    expect(outcome!.error).toBeUndefined();
    const after = messages();
    expect(after.findIndex((m) => m.startsWith('backfill of split-steered: going on'))).toBeGreaterThan(after.findIndex((m) => m.includes('tuned by')));
    expect(after.filter((m) => m === 'backfill batch committed').length).toBeGreaterThan(batches);
    expect(await inconsistentRows(db, 'steered')).toBe(0);
  });

  it('holds a pause across a runner killed and started again, until resume', async () => {
    await table('restarted', 6_000);
    const yaml = splitPlanYaml('split-restarted', 'public.restarted', SLOW, '{ lock_timeout: 2s }');
    const dir = await planDir({ 'split-restarted.yaml': yaml });
    const args = ['plan', 'apply', 'split-restarted', '--phase', 'backfill', '--dir', dir, '--database-url', db.url];
    const first = startCli(args);
    let firstLog = '';
    first.child.stderr!.on('data', (d: Buffer) => (firstLog += d.toString()));
    await waitFor('300 rows walked', async () => (await rowsDone('split-restarted')) >= 300);
    await pause('split-restarted', { databaseUrl: db.url });
    await waitFor('the first runner to pause', async () => firstLog.includes('no batch is written meanwhile'));
    first.child.kill('SIGKILL');
    await first.done;
    const held = await rowsDone('split-restarted');

    const second = startCli(args);
    let secondLog = '';
    second.child.stderr!.on('data', (d: Buffer) => (secondLog += d.toString()));
    await waitFor('the second runner to find the backfill paused', async () => secondLog.includes('no batch is written meanwhile'), 60_000);
    expect(await rowsDone('split-restarted')).toBe(held);
    expect((await runCli(['plan', 'resume', 'split-restarted', '--dir', dir, '--database-url', db.url])).code).toBe(0);
    const done = await second.done;
    expect(done.code).toBe(0);
    expect(await rowsDone('split-restarted')).toBeGreaterThan(held);
    expect(await inconsistentRows(db, 'restarted')).toBe(0);
  });

  it('refuses to steer a plan that is not in flight, with exit 2', async () => {
    const dir = await planDir({});
    const out = await runCli(['plan', 'pause', 'no-such-plan', '--dir', dir, '--database-url', db.url]);
    expect(out.code).toBe(2);
    expect(out.errors).toContain('plan "no-such-plan" is not in flight (never started)');
  });
});
