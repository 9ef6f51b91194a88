/**
 * `npm run bench`: the three figures of "invisible to the application" in one
 * run, each as a ratio against a reference measured in the same run:
 *
 * - lock queue: the application's longest lock wait while a 3 s transaction
 *   blocks the migration, pgshift vs a plain ALTER under a 2 s lock_timeout;
 * - trigger: TPS of old code's writes under the dual-write trigger vs a plain
 *   table, vs the application writing both sides itself, and an empty
 *   plpgsql trigger's (pgbench), with commits not waiting for their WAL
 *   flush (CPU-bound) and then durable (synchronous_commit on);
 * - backfill: the whole `apply --phase backfill` (verification included), with
 *   1 and 2 workers, vs one UPDATE of the same rows on an identical copy, with
 *   the runner's peak RSS.
 *
 * Each part starts its own embedded PostgreSQL (or uses BENCH_DATABASE_URL).
 * `--rows` sets the backfill's rows (default 1000000; e.g. `--rows 1000000,10000000`),
 * `--quick` shortens the trigger rounds. The parts also run alone:
 * `npm run bench:lock-wait`, `bench:trigger`, `bench:backfill`.
 */
import os from 'node:os';
import { benchBackfill } from './backfill.js';
import { lockWaitBench } from './lock-wait.js';
import { DEFAULT_TRIGGER_BENCH, runTriggerBench } from './trigger.js';
import { DEFAULT_PAUSE_MS, DEFAULT_TARGET_BATCH_MS } from '../src/defaults.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const quick = process.argv.includes('--quick');
const rowsList = (arg('rows') ?? '1000000').split(',').map((r) => Number(r.replaceAll('_', '')));
const log = (line: string): void => console.error(line);
const x = (n: number): string => `${n.toFixed(2)}×`;

const lines: string[] = [];
const load = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
lines.push(`machine: ${os.cpus().length} CPUs, load average at start ${load()}`);

log('lock queue…');
const locks = await lockWaitBench({ adminUrl: process.env.BENCH_DATABASE_URL });
lines.push(
  `lock queue (${locks.server}; ${locks.rows} rows, a ${locks.blockerMs / 1000} s blocker): app max lock wait ${Math.round(locks.pgshift.maxLockWaitMs)} ms with pgshift ` +
    `vs ${Math.round(locks.reference.maxLockWaitMs)} ms with a plain ALTER (lock_timeout ${locks.referenceLockTimeoutMs} ms): ${x(locks.pgshift.maxLockWaitMs / Math.max(1, locks.reference.maxLockWaitMs))}`,
);

// Twice: CPU-bound (commits not waiting for their WAL flush), where a trigger's CPU shows most, and durable
// (synchronous_commit on, the server's default and production's), where each commit waits for its flush.
for (const durable of [false, true]) {
  log(`trigger, synchronous_commit ${durable ? 'on' : 'off'}…`);
  const trigger = await runTriggerBench(
    { ...DEFAULT_TRIGGER_BENCH, durable, ...(quick ? { rounds: 3, seconds: 5 } : {}), log },
    process.env.BENCH_DATABASE_URL,
  );
  for (const k of trigger.kinds) {
    lines.push(
      `trigger, ${k.kind}, synchronous_commit ${durable ? 'on' : 'off'} (${trigger.options.rows} rows, median of ${trigger.options.rounds} alternating rounds): ` +
        `trigger/plain ${x(k.triggerVsPlain)}, trigger/app-side dual write ${x(k.triggerVsApp)}, empty plpgsql trigger/app-side dual write ${x(k.floorVsApp)}` +
        (k.cpuPerTx
          ? `; server CPU per write ${k.cpuPerTx.trigger.toFixed(1)} µs vs ${k.cpuPerTx.app.toFixed(1)} µs app-side (empty trigger ${k.cpuPerTx.floor.toFixed(1)} µs)`
          : ''),
    );
  }
}

for (const rows of rowsList) {
  log(`backfill, ${rows} rows…`);
  const b = await benchBackfill({
    rows,
    workers: [1, 2],
    pauseMs: DEFAULT_PAUSE_MS,
    targetMs: DEFAULT_TARGET_BATCH_MS,
    live: false,
    clients: 4,
    rate: 200,
    baselineSeconds: 5,
    print: log,
  });
  for (const p of b.phases) {
    lines.push(
      `backfill phase, ${rows} rows, ${p.workers} worker(s): ${(p.phaseMs / 1000).toFixed(2)} s vs one UPDATE ${(b.updateMs / 1000).toFixed(2)} s: ${x(p.ratio)}; runner peak RSS ${Math.round(p.peakRssMb)} MB`,
    );
  }
}
lines.push(`load average at end ${load()}`);
console.log(lines.join('\n'));
