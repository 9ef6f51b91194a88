/**
 * Backfill benchmark: how close the batched, resumable backfill comes to one
 * UPDATE, what it costs the runner in memory, and what it costs a live
 * application in latency. Prints figures; asserts nothing.
 *
 *   npm run bench:backfill -- --rows 1000000 [--clients 4 --rate 50 --baseline-seconds 15 --pause-ms 20 --target-ms 200]
 *
 * Four identical tables of N rows each get the same split plan applied up to
 * `dual-write` (so each carries the sync trigger):
 * - `bench_quiet`: the `backfill` phase, run by the real CLI as a child
 *   process, with nothing else running;
 * - `bench_update_1` before it and `bench_update_2` after it: one `UPDATE`
 *   setting the new columns with the very same SET list, in one transaction
 *   that sets `pgshift.backfill` like a batch, so the trigger stands aside
 *   for both alike; the ratio uses the mean of the two, which brackets a
 *   change in the (shared) machine's load;
 * - `bench_live`: the `backfill` phase again while a paced point-read /
 *   point-write workload runs, compared with the same workload before and
 *   after it.
 * Every table is freshly loaded, VACUUMed and ANALYZEd, and a CHECKPOINT
 * precedes each timed run.
 */
import { spawn } from 'node:child_process';
import { readFile, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { fillNewAssignments } from '../src/backfill/consistency.js';
import type { PlanFacts } from '../src/changes/model.js';
import { resolveChange } from '../src/changes/registry.js';
import { objectNames } from '../src/changes/sql-objects.js';
import { ident, literal } from '../src/db/ident.js';
import { parsePlan } from '../src/plan/load.js';
import { DEFAULT_PAUSE_MS, DEFAULT_TARGET_BATCH_MS } from '../src/defaults.js';
import { benchServer } from './server.js';
import { percentile, startWorkload, type WorkloadResult } from './workload.js';
import { splitPlanYaml } from '../test/helpers/fixtures.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/migrate.js');

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const raw = i >= 0 ? process.argv[i + 1] : process.env[`BENCH_${name.toUpperCase().replace('-', '_')}`];
  return raw ? Number(raw.replaceAll('_', '')) : fallback;
}

const ROWS = option('rows', 1_000_000);
const CLIENTS = option('clients', 4);
const RATE = option('rate', 50);
const BASELINE_S = option('baseline-seconds', 15);
/** `backfill.pause` for the benchmark's plans; the default unless given. */
const PAUSE_MS = option('pause-ms', DEFAULT_PAUSE_MS);
/** `backfill.target_batch_ms` for the benchmark's plans; the default unless given. */
const TARGET_MS = option('target-ms', DEFAULT_TARGET_BATCH_MS);

const planYaml = (table: string): string =>
  splitPlanYaml(table.replaceAll('_', '-'), `public.${table}`, `{ pause: ${PAUSE_MS}ms, target_batch_ms: ${TARGET_MS} }`, '{}');

async function main(): Promise<void> {
  const server = await benchServer();
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  const dbName = `pgshift_bench_${process.pid}`;
  await admin.query(`CREATE DATABASE ${ident(dbName)}`);
  const url = new URL(server.adminUrl);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const db = new pg.Client({ connectionString: dbUrl });
  await db.connect();
  try {
    const version = (await db.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v;
    console.log(`pgshift backfill benchmark: ${ROWS.toLocaleString('en')} rows, PostgreSQL ${version}, ${server.description}, ${os.cpus().length} CPUs`);
    console.log(`plan: backfill.pause ${PAUSE_MS} ms, backfill.target_batch_ms ${TARGET_MS}; load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const tables = ['bench_update_1', 'bench_quiet', 'bench_update_2', 'bench_live'];
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-bench-plans-'));
    let t = performance.now();
    for (const table of tables) {
      await db.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, full_name text NOT NULL, user_name text, email text, created_at timestamptz NOT NULL DEFAULT now())`);
      await db.query(
        `INSERT INTO ${table} (full_name, user_name, email)
         SELECT 'First' || g || ' Last' || g, 'user' || g, 'u' || g || '@example.com' FROM generate_series(1, $1::int8) g`,
        [ROWS],
      );
      await db.query(`VACUUM ANALYZE ${table}`);
      await writeFile(path.join(dir, `${table}.yaml`), planYaml(table));
    }
    const size = (await db.query<{ s: string }>(`SELECT pg_size_pretty(pg_total_relation_size('bench_quiet')) AS s`)).rows[0]!.s;
    console.log(`loaded ${tables.length} tables in ${secs(performance.now() - t)} (${size} each)`);
    const plans = tables.map((x) => x.replaceAll('_', '-'));
    const prep = await cli(dbUrl, dir, ['apply', ...plans, '--phase', 'dual-write']);
    if (prep.code !== 0) throw new Error(`apply dual-write failed: ${prep.stderr}`);

    // 1. One UPDATE computing the same values, on an identical table; again after the backfill, on another,
    // so a change in the machine's load during the run shows (the ratio uses their mean).
    const update1 = await singleUpdate(db, 'bench_update_1');
    // 2. The backfill phase, alone.
    await db.query('CHECKPOINT');
    const quiet = await cli(dbUrl, dir, ['apply', 'bench-quiet', '--phase', 'backfill']);
    if (quiet.code !== 0) throw new Error(`backfill failed: ${quiet.stderr}`);
    const update2 = await singleUpdate(db, 'bench_update_2');
    const updateMs = (update1.ms + update2.ms) / 2;

    // 3. The backfill phase under a live workload, against the same workload before.
    await db.query('CHECKPOINT');
    // The baseline is taken before and after (half each), for the same reason as the two UPDATEs.
    const baseline1 = await workloadFor(dbUrl, BASELINE_S / 2);
    const during = startWorkload(dbUrl, 'bench_live', ROWS, CLIENTS, RATE);
    const live = await cli(dbUrl, dir, ['apply', 'bench-live', '--phase', 'backfill']);
    const load = await during.stop();
    if (live.code !== 0) throw new Error(`live backfill failed: ${live.stderr}`);
    const baseline2 = await workloadFor(dbUrl, BASELINE_S / 2);
    const baseline: WorkloadResult = {
      reads: [...baseline1.reads, ...baseline2.reads],
      writes: [...baseline1.writes, ...baseline2.writes],
      errors: baseline1.errors + baseline2.errors,
    };
    const verify = await cli(dbUrl, dir, ['verify', 'bench-live']);

    const quietBackfillMs = quiet.steps.get('backfill') ?? NaN;
    const quietVerifyMs = quiet.steps.get('verify') ?? NaN;
    const liveBackfillMs = live.steps.get('backfill') ?? NaN;
    const bloat = (await db.query<{ t: string; s: string }>(
      `SELECT relname AS t, pg_size_pretty(pg_total_relation_size(oid)) AS s FROM pg_class WHERE relname LIKE 'bench\\_%' AND relkind = 'r' ORDER BY relname`,
    )).rows;

    console.log('');
    console.log(`single UPDATE (${update1.rows} rows):      ${secs(updateMs)}  ${rate(ROWS, updateMs)}  (before the backfill ${secs(update1.ms)}, after ${secs(update2.ms)})`);
    console.log(`backfill step, quiet:               ${secs(quietBackfillMs)}  ${rate(ROWS, quietBackfillMs)}`);
    console.log(`  + verify step:                    ${secs(quietVerifyMs)}  (whole phase in the CLI: ${secs(quiet.wallMs)})`);
    console.log(`ratio backfill / single UPDATE:     ${(quietBackfillMs / updateMs).toFixed(2)}  (with verify: ${((quietBackfillMs + quietVerifyMs) / updateMs).toFixed(2)})`);
    console.log(`backfill step under the workload:   ${secs(liveBackfillMs)}  ${rate(ROWS, liveBackfillMs)}`);
    console.log(`runner peak RSS:                    ${mb(quiet.peakRssKb)} quiet, ${mb(live.peakRssKb)} under load`);
    const pauses = Math.max(0, quiet.batches.count - 1) * PAUSE_MS;
    console.log(
      `batches: ${quiet.batches.count} quiet (next size ${quiet.batches.first} → ${quiet.batches.last}, median ${quiet.batches.medianMs.toFixed(0)} ms each); ` +
        `batches committed in ${secs(quiet.batches.committedMs)} (UPDATEs ${secs(quiet.batches.updateMs)}, finding batch ends ${secs(quiet.batches.boundMs)}), ` +
        `pauses ${secs(pauses)}, ANALYZE ${secs(quiet.analyzeMs)}`,
    );
    console.log(`ratio of the UPDATE statements alone: ${(quiet.batches.updateMs / updateMs).toFixed(2)}`);
    console.log(`ratio without the configured pauses: ${((quietBackfillMs - pauses) / updateMs).toFixed(2)}`);
    console.log(`workload (${CLIENTS} clients × ${RATE} ops/s, p50 / p99 / max ms, errors):`);
    console.log(`  before and after:  ${lat(baseline)}`);
    console.log(`  during:            ${lat(load)}`);
    const p99 = (w: WorkloadResult): number => percentile([...w.reads, ...w.writes], 99);
    const ratio99 = (a: number[], b: number[]): string => (percentile(a, 99) / percentile(b, 99)).toFixed(2);
    console.log(`p99 during / before:                ${(p99(load) / p99(baseline)).toFixed(2)}  (reads alone ${ratio99(load.reads, baseline.reads)}, writes alone ${ratio99(load.writes, baseline.writes)})`);
    console.log(`verify after the live backfill:     exit ${verify.code} ${verify.stdout.trim()}`);
    console.log(`table sizes after: ${bloat.map((b) => `${b.t} ${b.s}`).join(', ')}`);
  } finally {
    await db.end().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${ident(dbName)} WITH (FORCE)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
    await server.stop();
  }
}

/**
 * One UPDATE setting the new columns with the very SET list a batch uses, in
 * a transaction that sets `pgshift.backfill` as a batch does, so the
 * trigger stands aside for it just the same.
 */
async function singleUpdate(db: pg.Client, table: string): Promise<{ ms: number; rows: number }> {
  await db.query('CHECKPOINT');
  const name = table.replaceAll('_', '-');
  const facts = (await db.query<{ facts: PlanFacts }>(`SELECT facts FROM pgshift.plans WHERE name = $1`, [name])).rows[0]!.facts;
  const plan = parsePlan(planYaml(table), `${table}.yaml`);
  const set = fillNewAssignments(resolveChange(plan.change, facts), objectNames(plan.name, facts));
  const t = performance.now();
  await db.query('BEGIN');
  await db.query(`SELECT set_config('search_path', ${literal(facts.searchPath)}, true), set_config('pgshift.backfill', 'on', true)`);
  const updated = await db.query(`UPDATE public.${ident(table)} SET ${set}`);
  await db.query('COMMIT');
  return { ms: performance.now() - t, rows: updated.rowCount ?? 0 };
}

async function workloadFor(dbUrl: string, seconds: number): Promise<WorkloadResult> {
  const w = startWorkload(dbUrl, 'bench_live', ROWS, CLIENTS, RATE);
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
  let boundMs = 0;
  let updateMs = 0;
  let committedMs = 0;
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; ms?: number; step?: string; next?: number; boundMs?: number; updateMs?: number; committedMs?: number };
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
const mb = (kb: number): string => `${(kb / 1024).toFixed(0)} MB`;
const lat = (w: WorkloadResult): string => {
  const all = [...w.reads, ...w.writes];
  return `${percentile(all, 50).toFixed(2)} / ${percentile(all, 99).toFixed(2)} / ${Math.max(...all).toFixed(1)} (${all.length} ops, ${w.errors} errors)`;
};

await main();
