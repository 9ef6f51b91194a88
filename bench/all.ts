/**
 * `npm run bench`: the three figures of "invisible to the application" in one
 * run, each as a ratio against a reference measured in the same run:
 *
 * - lock queue: the application's longest lock wait while a 3 s transaction
 *   blocks the migration, pgshift vs a plain ALTER under a 2 s lock_timeout;
 * - trigger: TPS of old code's writes under the dual-write trigger vs a plain
 *   table, vs the application writing both sides itself, and vs an empty
 *   plpgsql trigger (the cost of having any trigger), with pgbench;
 * - backfill: the whole `apply --phase backfill` (verification included), with
 *   the default workers, 1 and 2, vs one UPDATE of the same rows on an
 *   identical copy, with the runner's peak RSS; on the durable server also
 *   the application's p99 (a paced point-read/point-write workload) without
 *   the backfill, during it with the defaults, and during it with the impact
 *   budget `backfill.max_active_sessions` (`APP_BUDGET`).
 *
 * The trigger and backfill parts run twice, each on a server of its own
 * started for it: a durable one (commits wait for their WAL flush, fsync and
 * full_page_writes on) and a CPU-bound one (`fsync`, `synchronous_commit`
 * and `full_page_writes` off: nothing waits for the disk, as on a server
 * with a fast disk and a warm cache); each ratio is against its reference
 * measured on the same server in the same run, and every line says which
 * server it is from. Each part starts its own embedded PostgreSQL (or uses
 * BENCH_DATABASE_URL, for both kinds).
 * `--rows` sets the backfill's rows (default 1000000; e.g. `--rows 1000000,10000000`),
 * `--quick` shortens the trigger rounds. The parts also run alone:
 * `npm run bench:lock-wait`, `bench:trigger`, `bench:backfill`.
 */
import os from 'node:os';
import { benchBackfill } from './backfill.js';
import { lockWaitBench } from './lock-wait.js';
import { DEFAULT_TRIGGER_BENCH, runTriggerBench } from './trigger.js';
import { workersLabel } from './backfill.js';
import type { ServerKind } from './server.js';
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

const SERVERS: readonly ServerKind[] = ['durable', 'cpu-bound'];

/** The impact budget the bench tries: batches wait whenever two of the workload's 4 paced clients run at once (docs/benchmarks.md). */
const APP_BUDGET = 1;

for (const server of SERVERS) {
  // On the durable server sessions commit with its synchronous_commit (on); the CPU-bound one has it off.
  const durable = server === 'durable';
  log(`trigger, ${server} server…`);
  const trigger = await runTriggerBench(
    { ...DEFAULT_TRIGGER_BENCH, durable, server, ...(quick ? { rounds: 3, seconds: 5 } : {}), log },
    process.env.BENCH_DATABASE_URL,
  );
  for (const k of trigger.kinds) {
    lines.push(
      `[${server}] trigger, ${k.kind} (${trigger.options.rows} rows, median of ${trigger.options.rounds} alternating rounds): ` +
        `trigger/app-side dual write ${x(k.triggerVsApp)}, trigger/empty plpgsql trigger ${x(k.triggerVsFloor)}, trigger/plain ${x(k.triggerVsPlain)}, ` +
        `empty trigger/app-side ${x(k.floorVsApp)}` +
        (k.cpuPerTx
          ? `; server CPU per write ${k.cpuPerTx.trigger.toFixed(1)} µs vs ${k.cpuPerTx.app.toFixed(1)} µs app-side (empty trigger ${k.cpuPerTx.floor.toFixed(1)} µs)`
          : ''),
    );
  }
  for (const rows of rowsList) {
    log(`backfill, ${rows} rows, ${server} server…`);
    const b = await benchBackfill({
      rows,
      workers: [0, 1, 2],
      server,
      pauseMs: DEFAULT_PAUSE_MS,
      targetMs: DEFAULT_TARGET_BATCH_MS,
      // The application's latency with and without the backfill, and with the impact budget, on the durable server.
      live: durable,
      clients: 4,
      rate: 200,
      baselineSeconds: 10,
      budget: APP_BUDGET,
      print: log,
    });
    for (const p of b.phases) {
      lines.push(
        `[${server}] backfill phase, ${rows} rows, ${workersLabel(p)}: ${(p.phaseMs / 1000).toFixed(2)} s vs one UPDATE ${(b.updateMs / 1000).toFixed(2)} s: ${x(p.ratio)}; ` +
          `runner peak RSS ${Math.round(p.peakRssMb)} MB`,
      );
    }
    lines.push(`[${server}] the same UPDATE firing no trigger: ${(b.bareUpdateMs / 1000).toFixed(2)} s`);
    if (b.live) {
      const ms = (n: number): string => `${n.toFixed(2)} ms`;
      lines.push(
        `[${server}] application p99 (4 clients × 200 ops/s): ${ms(b.live.p99BeforeMs)} without the backfill, ${ms(b.live.p99DuringMs)} during it with the defaults ` +
          `(${x(b.live.p99DuringMs / b.live.p99BeforeMs)}, phase ${(b.live.phaseMs / 1000).toFixed(2)} s)` +
          (b.live.budget
            ? `, ${ms(b.live.budget.p99DuringMs)} with max_active_sessions ${b.live.budget.sessions} (${x(b.live.budget.p99DuringMs / b.live.p99BeforeMs)}, phase ${(b.live.budget.phaseMs / 1000).toFixed(2)} s)`
            : ''),
      );
    }
  }
}
lines.push(`load average at end ${load()}`);
console.log(lines.join('\n'));
