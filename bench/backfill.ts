/**
 * Backfill benchmark: the whole `backfill` phase (the real CLI, from its
 * start to its exit: the walk, the final check, ANALYZE) against one UPDATE
 * of the same rows on an identical copy, measured in the same run, with the
 * runner's peak RSS; optionally what the backfill costs a live application
 * in latency. Prints figures; asserts nothing.
 *
 *   npm run bench:backfill -- --rows 1000000,10000000 [--workers default,1,2] [--server durable|cpu-bound] [--live --clients 4 --rate 50 --baseline-seconds 15 --budget 2] [--pause-ms 0 --target-ms 50]
 *
 * For each size, identical tables of N rows get the same split plan applied
 * up to `dual-write` (so each carries the sync trigger):
 * - `bench_update_1` first and `bench_update_2` last: one `UPDATE` setting
 *   the new columns with the very same SET list, in one transaction that
 *   sets `pgshift.backfill` like a batch, so the trigger stands aside for
 *   both alike; the ratio uses the mean of the two, which brackets a change
 *   in the (shared) machine's load;
 * - `bench_w<n>`, one per `--workers` value, in between: `migrate plan apply
 *   --phase backfill` with `backfill.workers: n` (`bench_w0`: `default`,
 *   the plan not setting it), run as a child process whose wall time (start
 *   to exit) is the figure;
 * - `bench_bare`, last: the same UPDATE with `session_replication_role =
 *   replica`, which fires no trigger, as the backfill's batches do when the
 *   runner may set it: what the UPDATE costs without the trigger's call;
 * - with `--live`, `bench_live`: the phase again while a paced point-read /
 *   point-write workload runs, compared with the same workload before and
 *   after it; with `--budget N` also `bench_budget`: the same again with
 *   `backfill.max_active_sessions: N`, what the impact budget buys.
 * Every table is freshly loaded, VACUUMed and ANALYZEd, and a CHECKPOINT
 * precedes each timed run. `benchBackfill()` is the same, for `npm run bench`.
 */
import { spawn } from 'node:child_process';
import { readFile, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { fillNewAssignments } from '../src/backfill/consistency.js';
import type { PlanFacts } from '../src/changes/model.js';
import { resolveChange } from '../src/changes/kinds/registry.js';
import { objectNames } from '../src/changes/sql-objects.js';
import { ident, literal } from '../src/db/ident.js';
import { parsePlan } from '../src/plan/load.js';
import { DEFAULT_PAUSE_MS, DEFAULT_TARGET_BATCH_MS } from '../src/defaults.js';
import { benchServer, scratchDatabase, type ServerKind } from './server.js';
import { percentile, startWorkload, type WorkloadResult } from './workload.js';
import { splitPlanYaml } from '../test/helpers/fixtures.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/migrate.js');

/** What `benchBackfill` measures. */
export interface BackfillBenchOptions {
  readonly rows: number;
  /** One phase run per value of `backfill.workers`; 0 leaves it unset (the default, decided from the server). */
  readonly workers: readonly number[];
  /** The embedded server to start (bench/server.ts); durable by default. */
  readonly server?: ServerKind | undefined;
  readonly pauseMs: number;
  readonly targetMs: number;
  /** Also run the phase under a live workload (slower). */
  readonly live: boolean;
  readonly clients: number;
  readonly rate: number;
  readonly baselineSeconds: number;
  /** With `live`: also run the phase under the workload with `backfill.max_active_sessions` set to this (0: not). */
  readonly budget?: number | undefined;
  /** Where to print the figures as they come (default: nowhere). */
  readonly print?: ((line: string) => void) | undefined;
}

/** One `apply --phase backfill` run. */
export interface PhaseFigures {
  /** `backfill.workers` in the plan; 0 = unset. */
  readonly workers: number;
  /** The workers the default gave, from the runner's log (null when the plan set them). */
  readonly defaultWorkers: number | null;
  /** CLI start to exit. */
  readonly phaseMs: number;
  readonly backfillStepMs: number;
  readonly verifyStepMs: number;
  readonly analyzeMs: number;
  readonly peakRssMb: number;
  /** phaseMs / the single UPDATE (mean of before and after). */
  readonly ratio: number;
  /** Rows the final check read (those changed since their batch), or null when it read every row. */
  readonly verifyRowsRead: number | null;
  readonly batches: number;
}

/** What one size measured. */
export interface BackfillFigures {
  readonly rows: number;
  readonly server: string;
  readonly cpus: number;
  readonly loadAverage: readonly number[];
  readonly updateMs: number;
  readonly updateBeforeMs: number;
  readonly updateAfterMs: number;
  /** The same UPDATE firing no trigger (session_replication_role = replica). */
  readonly bareUpdateMs: number;
  readonly phases: readonly PhaseFigures[];
  readonly live: {
    readonly p99BeforeMs: number;
    readonly p99DuringMs: number;
    readonly errors: number;
    readonly phaseMs: number;
    /** The same phase with `max_active_sessions` set (`budget`), or null. */
    readonly budget: { readonly sessions: number; readonly p99DuringMs: number; readonly errors: number; readonly phaseMs: number } | null;
  } | null;
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return (i >= 0 ? process.argv[i + 1] : process.env[`BENCH_${name.toUpperCase().replaceAll('-', '_')}`]) ?? fallback;
}
const numbers = (raw: string): number[] => raw.split(',').map((x) => Number(x.replaceAll('_', '')));

const planYaml = (table: string, o: Pick<BackfillBenchOptions, 'pauseMs' | 'targetMs'>, workers = 1, budget = 0): string =>
  splitPlanYaml(
    table.replaceAll('_', '-'),
    `public.${table}`,
    `{ pause: ${o.pauseMs}ms, target_batch_ms: ${o.targetMs}${workers ? `, workers: ${workers}` : ''}${budget ? `, max_active_sessions: ${budget}` : ''} }`,
    '{}',
  );

async function main(): Promise<void> {
  const live = process.argv.includes('--live');
  for (const rows of numbers(option('rows', '1000000'))) {
    await benchBackfill({
      rows,
      workers: option('workers', 'default,1,2')
        .split(',')
        .map((w) => (w === 'default' ? 0 : Number(w))),
      server: option('server', 'durable') === 'cpu-bound' ? 'cpu-bound' : 'durable',
      pauseMs: Number(option('pause-ms', String(DEFAULT_PAUSE_MS))),
      targetMs: Number(option('target-ms', String(DEFAULT_TARGET_BATCH_MS))),
      live,
      clients: Number(option('clients', '4')),
      rate: Number(option('rate', '50')),
      baselineSeconds: Number(option('baseline-seconds', '15')),
      budget: Number(option('budget', '0')),
      print: (line) => console.log(line),
    });
    console.log('');
  }
}

/** Measure the backfill phase against one UPDATE at one size, on a server of its own; print as it goes. */
export async function benchBackfill(o: BackfillBenchOptions): Promise<BackfillFigures> {
  const print = o.print ?? ((): void => undefined);
  const server = await benchServer(o.server);
  const scratch = await scratchDatabase(server.adminUrl, `pgshift_bench_${process.pid}`);
  const { db, dbUrl } = scratch;
  try {
    const version = (await db.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v;
    const loadAverage = os.loadavg();
    print(`pgshift backfill benchmark: ${o.rows.toLocaleString('en')} rows, PostgreSQL ${version}, ${server.description}, ${os.cpus().length} CPUs`);
    print(
      `plan: backfill.pause ${o.pauseMs} ms, backfill.target_batch_ms ${o.targetMs}; load average at start ${loadAverage.map((l) => l.toFixed(2)).join(' ')}`,
    );
    const phaseTables = o.workers.map((w) => `bench_w${w}`);
    const budget = o.live ? (o.budget ?? 0) : 0;
    const tables = ['bench_update_1', ...phaseTables, 'bench_update_2', 'bench_bare', ...(o.live ? ['bench_live'] : []), ...(budget ? ['bench_budget'] : [])];
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-bench-plans-'));
    const t = performance.now();
    for (const table of tables) {
      await db.query(
        `CREATE TABLE ${table} (id bigserial PRIMARY KEY, full_name text NOT NULL, user_name text, email text, created_at timestamptz NOT NULL DEFAULT now())`,
      );
      await db.query(
        `INSERT INTO ${table} (full_name, user_name, email)
         SELECT 'First' || g || ' Last' || g, 'user' || g, 'u' || g || '@example.com' FROM generate_series(1, $1::int8) g`,
        [o.rows],
      );
      await db.query(`VACUUM ANALYZE ${table}`);
      const workers = /^bench_w(\d+)$/.exec(table)?.[1];
      // The live runs leave workers to the default, as a plan would; the budget run differs from the live one by its budget alone.
      const live = table === 'bench_live' || table === 'bench_budget';
      await writeFile(path.join(dir, `${table}.yaml`), planYaml(table, o, workers ? Number(workers) : live ? 0 : 1, table === 'bench_budget' ? budget : 0));
    }
    const size = (await db.query<{ s: string }>(`SELECT pg_size_pretty(pg_total_relation_size('bench_update_1')) AS s`)).rows[0]!.s;
    print(`loaded ${tables.length} tables in ${secs(performance.now() - t)} (${size} each)`);
    const prep = await cli(dbUrl, dir, ['apply', ...tables.map((x) => x.replaceAll('_', '-')), '--phase', 'dual-write']);
    if (prep.code !== 0) throw new Error(`apply dual-write failed: ${prep.stderr}`);

    // One UPDATE before the phases and one after, on identical tables, so a change in the machine's load shows.
    const update1 = await singleUpdate(db, 'bench_update_1', o);
    const runs: CliRun[] = [];
    for (const table of phaseTables) {
      await db.query('CHECKPOINT');
      const run = await cli(dbUrl, dir, ['apply', table.replaceAll('_', '-'), '--phase', 'backfill']);
      if (run.code !== 0) throw new Error(`backfill of ${table} failed: ${run.stderr}`);
      runs.push(run);
    }
    const update2 = await singleUpdate(db, 'bench_update_2', o);
    const bare = await singleUpdate(db, 'bench_bare', o, true);
    const updateMs = (update1.ms + update2.ms) / 2;
    const phases: PhaseFigures[] = runs.map((run, i) => ({
      workers: o.workers[i]!,
      defaultWorkers: run.defaultWorkers,
      phaseMs: run.wallMs,
      backfillStepMs: run.steps.get('backfill') ?? NaN,
      verifyStepMs: run.steps.get('verify') ?? NaN,
      analyzeMs: run.analyzeMs,
      peakRssMb: run.peakRssKb / 1024,
      ratio: run.wallMs / updateMs,
      verifyRowsRead: run.verifyRowsRead,
      batches: run.batches.count,
    }));

    print('');
    print(
      `single UPDATE (${update1.rows} rows):        ${secs(updateMs)}  ${rate(o.rows, updateMs)}  (before the phases ${secs(update1.ms)}, after ${secs(update2.ms)})`,
    );
    print(`the same UPDATE firing no trigger: ${secs(bare.ms)}  ${rate(o.rows, bare.ms)}  (session_replication_role = replica)`);
    for (const [i, f] of phases.entries()) {
      const run = runs[i]!;
      print(
        `backfill phase, ${workersLabel(f)} (CLI start to exit): ${secs(f.phaseMs)}  ratio ${f.ratio.toFixed(2)}  ` +
          `(walk ${secs(f.backfillStepMs)}, final check ${secs(f.verifyStepMs)} reading ${f.verifyRowsRead ?? 'every'} rows, ANALYZE ${secs(f.analyzeMs)}, peak RSS ${f.peakRssMb.toFixed(0)} MB)`,
      );
      print(
        `  batches: ${run.batches.count} (median ${run.batches.medianMs.toFixed(0)} ms, next size ${run.batches.first} → ${run.batches.last}); ` +
          `batch transactions (BEGIN to COMMIT) ${secs(run.batches.updateMs)}, waiting for batch ends ${secs(run.batches.boundMs)}`,
      );
    }

    let liveFigures: BackfillFigures['live'] = null;
    if (o.live) {
      await db.query('CHECKPOINT');
      // The baseline is taken before and after (half each), for the same reason as the two UPDATEs.
      const baseline1 = await workloadFor(dbUrl, o, o.baselineSeconds / 2);
      const during = startWorkload(dbUrl, 'bench_live', o.rows, o.clients, o.rate);
      const run = await cli(dbUrl, dir, ['apply', 'bench-live', '--phase', 'backfill']);
      const load = await during.stop();
      if (run.code !== 0) throw new Error(`live backfill failed: ${run.stderr}`);
      const baseline2 = await workloadFor(dbUrl, o, o.baselineSeconds / 2);
      const baseline: WorkloadResult = {
        reads: [...baseline1.reads, ...baseline2.reads],
        writes: [...baseline1.writes, ...baseline2.writes],
        errors: baseline1.errors + baseline2.errors,
      };
      const verify = await cli(dbUrl, dir, ['verify', 'bench-live']);
      const p99 = (w: WorkloadResult): number => percentile([...w.reads, ...w.writes], 99);
      let budgetFigures: NonNullable<BackfillFigures['live']>['budget'] = null;
      if (budget) {
        await db.query('CHECKPOINT');
        // The same workload on the table being walked (an identical copy of the live one), now under the budget.
        const underBudget = startWorkload(dbUrl, 'bench_budget', o.rows, o.clients, o.rate);
        const budgetRun = await cli(dbUrl, dir, ['apply', 'bench-budget', '--phase', 'backfill']);
        const budgetLoad = await underBudget.stop();
        if (budgetRun.code !== 0) throw new Error(`budget backfill failed: ${budgetRun.stderr}`);
        budgetFigures = { sessions: budget, p99DuringMs: p99(budgetLoad), errors: budgetLoad.errors, phaseMs: budgetRun.wallMs };
        print(`backfill phase with max_active_sessions ${budget} under the workload: ${secs(budgetRun.wallMs)}; during: ${lat(budgetLoad)}`);
      }
      liveFigures = { p99BeforeMs: p99(baseline), p99DuringMs: p99(load), errors: load.errors, phaseMs: run.wallMs, budget: budgetFigures };
      print(`backfill phase under the workload: ${secs(run.wallMs)}; workload (${o.clients} clients × ${o.rate} ops/s, p50 / p99 / max ms, errors):`);
      print(`  before and after:  ${lat(baseline)}`);
      print(`  during:            ${lat(load)}`);
      print(`p99 during / before: ${(p99(load) / p99(baseline)).toFixed(2)}; verify after the live backfill: exit ${verify.code} ${verify.stdout.trim()}`);
    }
    const bloat = (
      await db.query<{ t: string; s: string }>(
        `SELECT relname AS t, pg_size_pretty(pg_total_relation_size(oid)) AS s FROM pg_class WHERE relname LIKE 'bench\\_%' AND relkind = 'r' ORDER BY relname`,
      )
    ).rows;
    print(
      `table sizes after: ${bloat.map((b) => `${b.t} ${b.s}`).join(', ')}; load average at the end ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    return {
      rows: o.rows,
      server: `PostgreSQL ${version}, ${server.description}`,
      cpus: os.cpus().length,
      loadAverage,
      updateMs,
      updateBeforeMs: update1.ms,
      updateAfterMs: update2.ms,
      bareUpdateMs: bare.ms,
      phases,
      live: liveFigures,
    };
  } finally {
    await scratch.drop();
    await server.stop();
  }
}

/**
 * One UPDATE setting the new columns with the very SET list a batch uses, in
 * a transaction that sets `pgshift.backfill` as a batch does, so the
 * trigger stands aside for it just the same.
 */
async function singleUpdate(
  db: pg.Client,
  table: string,
  o: Pick<BackfillBenchOptions, 'pauseMs' | 'targetMs'>,
  noTrigger = false,
): Promise<{ ms: number; rows: number }> {
  await db.query('CHECKPOINT');
  const name = table.replaceAll('_', '-');
  const facts = (await db.query<{ facts: PlanFacts }>(`SELECT facts FROM pgshift.plans WHERE name = $1`, [name])).rows[0]!.facts;
  const plan = parsePlan(planYaml(table, o), `${table}.yaml`);
  const set = fillNewAssignments(resolveChange(plan.change, facts), objectNames(plan.name, facts));
  const t = performance.now();
  await db.query('BEGIN');
  await db.query(
    `SELECT set_config('search_path', ${literal(facts.searchPath)}, true), set_config('pgshift.backfill', 'on', true), ` +
      `set_config('session_replication_role', ${noTrigger ? "'replica'" : "'origin'"}, true)`,
  );
  const updated = await db.query(`UPDATE public.${ident(table)} SET ${set}`);
  await db.query('COMMIT');
  return { ms: performance.now() - t, rows: updated.rowCount ?? 0 };
}

/** `2 workers`, or `default (2 workers)` for a plan that left them unset. */
export function workersLabel(f: Pick<PhaseFigures, 'workers' | 'defaultWorkers'>): string {
  const n = f.workers || f.defaultWorkers || 0;
  const label = `${n} worker${n === 1 ? '' : 's'}`;
  return f.workers ? label : `default (${label})`;
}

async function workloadFor(dbUrl: string, o: BackfillBenchOptions, seconds: number): Promise<WorkloadResult> {
  const w = startWorkload(dbUrl, 'bench_live', o.rows, o.clients, o.rate);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return w.stop();
}

interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly wallMs: number;
  /** Max resident set size of the CLI process (VmHWM), in kB. */
  readonly peakRssKb: number;
  /** Duration of each step kind ('backfill', 'verify', ...) from the runner's debug log. */
  readonly steps: Map<string, number>;
  readonly batches: { count: number; first: number; last: number; medianMs: number; totalMs: number; boundMs: number; updateMs: number; committedMs: number };
  /** The ANALYZE after the backfill. */
  readonly analyzeMs: number;
  /** Rows the final check read, from its log line; null when it read every row. */
  readonly verifyRowsRead: number | null;
  /** The workers the default gave (`backfill.workers not set: N workers …`), or null. */
  readonly defaultWorkers: number | null;
}

/** Run the real CLI as a child process, watching its peak RSS in /proc. */
async function cli(dbUrl: string, dir: string, args: string[]): Promise<CliRun> {
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, 'plan', ...args, '--dir', dir, '--json'], {
    env: { ...process.env, DATABASE_URL: dbUrl, PGSHIFT_LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let peak = 0;
  const poll = setInterval(() => void readPeak(child.pid!).then((kb) => (peak = Math.max(peak, kb))), 100);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(poll);
  const steps = new Map<string, number>();
  const sizes: number[] = [];
  const times: number[] = [];
  let analyzeMs = 0;
  let verifyRowsRead: number | null = null;
  let defaultWorkers: number | null = null;
  let boundMs = 0;
  let updateMs = 0;
  let committedMs = 0;
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as {
      msg?: string;
      ms?: number;
      step?: string;
      next?: number;
      boundMs?: number;
      updateMs?: number;
      committedMs?: number;
      rowsChanged?: number;
    };
    if (entry.msg?.startsWith('verify read ') && entry.rowsChanged !== undefined) verifyRowsRead = entry.rowsChanged;
    const decided = /^backfill\.workers not set: (\d+) worker/.exec(entry.msg ?? '');
    if (decided) defaultWorkers = Number(decided[1]);
    if (entry.msg?.startsWith('step ') && entry.step && entry.ms !== undefined) {
      const kind = entry.step.startsWith('fill ') ? 'backfill' : entry.step.startsWith('verify') ? 'verify' : entry.step;
      steps.set(kind, (steps.get(kind) ?? 0) + entry.ms);
    }
    if (entry.msg?.startsWith('analyzed ') && entry.ms !== undefined) analyzeMs = entry.ms;
    if (entry.msg === 'backfill batch committed' && entry.ms !== undefined) {
      times.push(entry.ms);
      sizes.push(entry.next ?? 0);
      boundMs += entry.boundMs ?? 0;
      updateMs += entry.updateMs ?? 0;
      committedMs += entry.committedMs ?? 0;
    }
  }
  times.sort((a, b) => a - b);
  return {
    code,
    stdout,
    stderr,
    wallMs: performance.now() - started,
    peakRssKb: peak,
    steps,
    batches: {
      count: times.length,
      first: sizes[0] ?? 0,
      last: sizes.at(-1) ?? 0,
      medianMs: times[Math.floor(times.length / 2)] ?? NaN,
      totalMs: times.reduce((a, b) => a + b, 0),
      boundMs,
      updateMs,
      committedMs,
    },
    analyzeMs,
    verifyRowsRead,
    defaultWorkers,
  };
}

async function readPeak(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const rate = (rows: number, ms: number): string => `${Math.round(rows / (ms / 1000)).toLocaleString('en')} rows/s`;
const lat = (w: WorkloadResult): string => {
  const all = [...w.reads, ...w.writes];
  return `${percentile(all, 50).toFixed(2)} / ${percentile(all, 99).toFixed(2)} / ${Math.max(...all).toFixed(1)} (${all.length} ops, ${w.errors} errors)`;
};

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
