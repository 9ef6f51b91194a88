/**
 * How long the application waits for a lock while a long transaction holds
 * the table and a migration needs ACCESS EXCLUSIVE, in one run:
 *
 * - reference: a plain `ALTER TABLE … ADD COLUMN` under `SET lock_timeout`
 *   (the plan's lock_timeout before it was per attempt: `--reference-lock-timeout`,
 *   default 2 s), retried on each timeout until it succeeds, as pgshift did before;
 * - pgshift: `migrate plan apply --phase expand` of a rename (the same ADD
 *   COLUMN) with the plan's guards (default lock_timeout 50 ms, waiting
 *   outside the queue), as a process of its own; attempts = 1 + lost ones.
 *
 * Each time a session holds ACCESS SHARE on the table for `--blocker` (3 s)
 * while `--clients` sessions run point reads and updates; the figure is the
 * application's longest query (timestamps around each) and the longest lock
 * wait seen in pg_stat_activity, and the ratio pgshift / reference.
 *
 *   npm run bench:lock-wait -- --rows 100000 --blocker 3s --clients 4
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parsePlan } from '../src/plan/load.js';
import { toMilliseconds } from '../src/plan/duration.js';
import { USERS_DDL } from '../examples/app/schema.js';
import { benchServer } from './server.js';

/** What one side of the comparison measured. */
export interface LockWaitSide {
  /** Longest application query, timestamps around it (ms). */
  readonly maxQueryMs: number;
  /** Longest time an application session was seen waiting for a lock (ms, pg_stat_activity every 5 ms). */
  readonly maxLockWaitMs: number;
  readonly queries: number;
  /** From the blocker's start to the column's being there (ms). */
  readonly doneAfterMs: number;
  /** Attempts the migration made (the reference: ALTERs run). */
  readonly attempts: number;
}

/** The figures `npm run bench` prints for this benchmark. */
export interface LockWaitFigures {
  readonly server: string;
  readonly rows: number;
  readonly clients: number;
  readonly blockerMs: number;
  readonly referenceLockTimeoutMs: number;
  readonly pgshiftLockTimeoutMs: number;
  readonly reference: LockWaitSide;
  readonly pgshift: LockWaitSide;
}

export interface LockWaitOptions {
  readonly rows?: number;
  readonly clients?: number;
  readonly blockerMs?: number;
  readonly referenceLockTimeoutMs?: number;
  /** Server to use (default: BENCH_DATABASE_URL or an embedded one). */
  readonly adminUrl?: string;
}

const APP = 'bench-lock-wait-app';
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/migrate.js');

/** Run `migrate plan …` on `url`; returns its stderr (warnings), throws unless it exits 0. */
async function cli(url: string, dir: string, args: string[]): Promise<string> {
  const child = spawn(process.execPath, [BIN, 'plan', ...args, '--dir', dir, '--json'], {
    env: { ...process.env, DATABASE_URL: url, PGSHIFT_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`migrate plan ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`);
  return stderr;
}

/** Run both sides on one server and return the figures. */
export async function lockWaitBench(options: LockWaitOptions = {}): Promise<LockWaitFigures> {
  const rows = options.rows ?? 100_000;
  const clients = options.clients ?? 4;
  const blockerMs = options.blockerMs ?? 3_000;
  const referenceLockTimeoutMs = options.referenceLockTimeoutMs ?? 2_000;
  const server = options.adminUrl ? { adminUrl: options.adminUrl, description: 'given URL', stop: async () => undefined } : await benchServer();
  try {
    const url = await freshDatabase(server.adminUrl);
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      await db.query(USERS_DDL);
      await db.query(
        `INSERT INTO users (full_name, user_name, email) SELECT 'First' || g || ' Last' || g, 'user' || g, 'u' || g || '@example.com' FROM generate_series(1, ${rows}) g`,
      );
      await db.query('VACUUM ANALYZE users');
      const version = (await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;

      const reference = await measure(url, rows, clients, blockerMs, async () => {
        let attempts = 0;
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        try {
          for (;;) {
            attempts++;
            try {
              await c.query(`SET lock_timeout = ${referenceLockTimeoutMs}`);
              await c.query('ALTER TABLE users ADD COLUMN IF NOT EXISTS ref_column text');
              return attempts;
            } catch (error) {
              if ((error as { code?: string }).code !== '55P03') throw error;
              await sleep(500 * (1 + Math.random()));
            }
          }
        } finally {
          await c.end();
        }
      });
      await db.query('ALTER TABLE users DROP COLUMN ref_column');

      // The real CLI in a process of its own, so its start-up does not delay the clients' timestamps.
      const text = 'plan: bench-lock-wait\ntable: public.users\nrename: { column: email, to: email_address }\n';
      const plan = parsePlan(text, 'bench-lock-wait.yaml');
      const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-bench-lock-wait-'));
      await writeFile(path.join(dir, 'bench-lock-wait.yaml'), text);
      await cli(url, dir, ['apply', '--phase', 'expand']); // plan start and state schema, before the measurement
      await cli(url, dir, ['rollback', 'bench-lock-wait']);
      const pgshift = await measure(url, rows, clients, blockerMs, async () => {
        const stderr = await cli(url, dir, ['apply', '--phase', 'expand']);
        return 1 + (stderr.match(/lock not granted within/g)?.length ?? 0);
      });
      await cli(url, dir, ['rollback', 'bench-lock-wait']);
      return {
        server: `PostgreSQL ${version}, ${server.description}`,
        rows,
        clients,
        blockerMs,
        referenceLockTimeoutMs,
        pgshiftLockTimeoutMs: plan.guards.lockTimeoutMs,
        reference,
        pgshift,
      };
    } finally {
      await db.end();
    }
  } finally {
    await server.stop();
  }
}

async function freshDatabase(adminUrl: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS pgshift_bench_lock_wait WITH (FORCE)');
  await admin.query('CREATE DATABASE pgshift_bench_lock_wait');
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = '/pgshift_bench_lock_wait';
  return url.toString();
}

/**
 * Start the application's clients, then a blocker holding ACCESS SHARE for
 * `blockerMs`, then (100 ms later) the migration; stop when both are done.
 */
async function measure(url: string, rows: number, clients: number, blockerMs: number, migrate: () => Promise<number>): Promise<LockWaitSide> {
  let running = true;
  const loops = Array.from({ length: clients }, async (_, i) => {
    const c = new pg.Client({ connectionString: url, application_name: APP });
    await c.connect();
    let max = 0;
    let n = 0;
    while (running) {
      const id = 1 + ((n * 7919 + i * 104729) % rows);
      const started = performance.now();
      await (i % 2 ? c.query('UPDATE users SET full_name = full_name WHERE id = $1', [id]) : c.query('SELECT id, full_name FROM users WHERE id = $1', [id]));
      max = Math.max(max, performance.now() - started);
      n++;
      await sleep(1);
    }
    await c.end();
    return { max, n };
  });
  const sampler = (async () => {
    const m = new pg.Client({ connectionString: url });
    await m.connect();
    let worst = 0;
    while (running) {
      const { rows: r } = await m.query<{ ms: number | null }>(
        `SELECT max(extract(epoch FROM clock_timestamp() - query_start) * 1000)::float8 AS ms FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
        [APP],
      );
      worst = Math.max(worst, r[0]?.ms ?? 0);
      await sleep(5);
    }
    await m.end();
    return worst;
  })();
  await sleep(300);
  const blocker = new pg.Client({ connectionString: url });
  await blocker.connect();
  await blocker.query('BEGIN');
  await blocker.query('SELECT count(*) FROM users');
  const started = performance.now();
  const release = sleep(blockerMs).then(() => blocker.query('COMMIT'));
  await sleep(100);
  const attempts = await migrate();
  const doneAfterMs = performance.now() - started;
  await release;
  await blocker.end();
  await sleep(300);
  running = false;
  const done = await Promise.all(loops);
  return {
    maxQueryMs: Math.max(...done.map((d) => d.max)),
    maxLockWaitMs: await sampler,
    queries: done.reduce((s, d) => s + d.n, 0),
    doneAfterMs,
    attempts,
  };
}

/** The figures as a Markdown table. */
export function formatLockWait(f: LockWaitFigures): string {
  const row = (name: string, s: LockWaitSide): string =>
    `| ${name} | ${s.maxLockWaitMs.toFixed(0)} | ${s.maxQueryMs.toFixed(0)} | ${s.queries} | ${s.attempts} | ${(s.doneAfterMs / 1000).toFixed(2)} |`;
  return [
    `${f.server}; ${f.rows} rows, ${f.clients} clients, a ${f.blockerMs / 1000} s blocker (ACCESS SHARE)`,
    '',
    '| migration | app max lock wait (ms) | app slowest query (ms) | app queries | attempts | column there after (s) |',
    '|---|---|---|---|---|---|',
    row(`plain ALTER, lock_timeout ${f.referenceLockTimeoutMs} ms, retried`, f.reference),
    row(`pgshift expand, lock_timeout ${f.pgshiftLockTimeoutMs} ms (per attempt)`, f.pgshift),
    '',
    `pgshift / reference: max lock wait ${ratio(f.pgshift.maxLockWaitMs, f.reference.maxLockWaitMs)}, slowest query ${ratio(f.pgshift.maxQueryMs, f.reference.maxQueryMs)}`,
  ].join('\n');
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(3)}×` : 'n/a';
}

function durationArg(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const ms = toMilliseconds(text);
  if (ms === null) throw new Error(`${text}: not a duration`);
  return ms;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string' },
      clients: { type: 'string' },
      blocker: { type: 'string' },
      'reference-lock-timeout': { type: 'string' },
    },
  });
  lockWaitBench({
    rows: values.rows ? Number(values.rows) : undefined,
    clients: values.clients ? Number(values.clients) : undefined,
    blockerMs: durationArg(values.blocker, 3_000),
    referenceLockTimeoutMs: durationArg(values['reference-lock-timeout'], 2_000),
  }).then(
    (f) => process.stdout.write(formatLockWait(f) + '\n'),
    (error: unknown) => {
      process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
