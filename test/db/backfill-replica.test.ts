import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplicaLagProbe } from '../../src/backfill/throttle.js';
import { apply, type BackfillProgress } from '../../src/index.js';
import { capturingLogger, splitPlanYaml, waitFor } from '../helpers/backfill.js';
import { plan } from '../helpers/fixtures.js';
import { standbyBinaries, startStreamingPair, type StreamingPair } from '../helpers/standby.js';

/**
 * `backfill.max_replica_lag` against a real streaming standby: a primary and
 * a hot standby started here from one installed PostgreSQL (initdb,
 * pg_basebackup -R, a second port). The standby's replay is paused, so it
 * falls behind for real; the backfill must stop between batches and say why,
 * and go on once replay resumes.
 */

const bin = standbyBinaries();
let pair: StreamingPair;
let primary: pg.Client;
let standby: pg.Client;

beforeAll(async () => {
  if (!bin) return;
  pair = await startStreamingPair(bin);
  primary = new pg.Client({ connectionString: pair.primaryUrl });
  standby = new pg.Client({ connectionString: pair.standbyUrl });
  await primary.connect();
  await standby.connect();
}, 120_000);

afterAll(async () => {
  if (!bin) return;
  await primary?.end().catch(() => undefined);
  await standby?.end().catch(() => undefined);
  await pair?.stop();
});

async function caughtUp(): Promise<boolean> {
  const { rows } = await primary.query<{ ok: boolean }>(`SELECT bool_and(replay_lsn >= pg_current_wal_lsn()) AS ok FROM pg_stat_replication`);
  return rows[0]?.ok === true;
}

describe.skipIf(!bin)('backfill throttled by replica lag (real streaming standby)', () => {
  it('sees a caught-up standby as no lag', async () => {
    await waitFor('the standby to catch up', caughtUp, 30_000, 100);
    const lags = await new ReplicaLagProbe(primary).lags();
    expect(lags).toEqual([{ name: pair.standbyName, lagMs: 0 }]);
  });

  it('waits between batches while the standby lags more than max_replica_lag, says so, and goes on when it catches up', async () => {
    await primary.query(`CREATE TABLE people (id bigserial PRIMARY KEY, full_name text)`);
    await primary.query(`INSERT INTO people (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, 40000) g`);
    const p = plan(
      splitPlanYaml(
        'split-people',
        'public.people',
        '{ batch_size: 200, pause: 20ms, target_batch_ms: 5, max_replica_lag: 500ms }',
        '{ lock_timeout: 1s, statement_timeout: 10s, retries: 2 }',
      ),
    );
    expect((await apply([p], 'dual-write', { databaseUrl: pair.primaryUrl }))[0]!.error).toBeUndefined();
    await waitFor('the standby to catch up', caughtUp, 30_000, 100);

    // Stop replay on the standby and write WAL it receives but does not apply.
    await standby.query('SELECT pg_wal_replay_pause()');
    await primary.query(`CREATE TABLE filler AS SELECT g FROM generate_series(1, 100000) g`);

    const { log, entries } = capturingLogger();
    const waits: (string | null)[] = [];
    const running = apply([p], 'backfill', { databaseUrl: pair.primaryUrl, log, onProgress: (x: BackfillProgress) => waits.push(x.waiting) });
    const warning = await waitFor(
      'the backfill to wait for the standby',
      async () => entries().find((e) => String(e.msg).startsWith('waiting for replica lag')),
      30_000,
      50,
    );
    expect(String(warning.msg)).toContain(pair.standbyName);
    expect(String(warning.msg)).toContain('max_replica_lag 0.5s');
    // While it waits, no batch commits.
    const progress = async (): Promise<{ n: number; f: boolean }> =>
      (await primary.query<{ n: number; f: boolean }>(`SELECT rows_done::int AS n, finished_at IS NOT NULL AS f FROM pgshift.backfill`)).rows[0]!;
    const held = await progress();
    expect(held.f).toBe(false);
    await sleep(2_000);
    expect(await progress()).toEqual(held);
    expect(waits.some((w) => w?.startsWith('waiting for replica lag'))).toBe(true);

    await standby.query('SELECT pg_wal_replay_resume()');
    const [outcome] = await running;
    expect(outcome!.error).toBeUndefined();
    expect(entries().some((e) => String(e.msg).startsWith('replicas caught up after'))).toBe(true);
    expect(await progress()).toEqual({ n: 40000, f: true });
    // And the standby has the backfilled rows too.
    await waitFor('the standby to replay the backfill', caughtUp, 30_000, 100);
    const onStandby = await standby.query<{ n: number }>(`SELECT count(*)::int AS n FROM people WHERE first_name IS NOT NULL`);
    expect(onStandby.rows[0]!.n).toBe(40000);
  });
});
