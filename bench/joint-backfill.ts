/**
 * Two plans on one table at backfill in one apply: one walk for both
 * (docs/backfill.md, several plans, one walk) against their two backfills
 * one after the other, measured in the same run. Prints figures; asserts
 * nothing.
 *
 *   npm run bench:joint-backfill -- --rows 1000000 --rounds 2 [--workers 1]
 *
 * Without `--workers` the plans leave `backfill.workers` to the default:
 * each walk alone then takes the default's workers, and the walk shared by
 * both runs as one (docs/backfill.md). `--workers 1` gives every walk one
 * worker, which measures what sharing the walk saves by itself.
 *
 * Each round loads two identical tables of N rows (full_name, user_name,
 * email), each with a rename of user_name and a split of full_name applied
 * up to `dual-write`, VACUUMed and ANALYZEd. On one table the two plans'
 * `backfill` phases run one after the other (`apply <a> --phase backfill`,
 * then `apply <b>`); on the other one `apply <a> <b> --phase backfill` walks
 * it once for both. Each figure is the real CLI's wall time from start to
 * exit (the walks, both final checks, both ANALYZEs), the WAL it wrote and
 * the row versions it made (`n_tup_upd`), after a CHECKPOINT. Rounds
 * alternate which goes first, so a change in the shared machine's load
 * falls on both.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { SPLIT_CHANGE } from '../test/helpers/fixtures.js';
import { benchServer, scratchDatabase } from './server.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/migrate.js');

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return (i >= 0 ? process.argv[i + 1] : process.env[`BENCH_${name.toUpperCase().replaceAll('-', '_')}`]) ?? fallback;
}

/** What one way of backfilling both plans cost. */
interface Figures {
  readonly ms: number;
  /** Of which: the phases' walks and final checks (ANALYZE beside them), from the runners' logs, without the CLI's start and checks. */
  readonly stepsMs: number;
  readonly walBytes: number;
  readonly rowVersions: number;
}

const kebab = (table: string): string => table.replaceAll('_', '-');
const workers = option('workers', '');
const backfill = workers ? `backfill: { workers: ${Number(workers)} }\n` : '';
const plans = (table: string): Record<string, string> => ({
  [`${kebab(table)}-a.yaml`]: `plan: ${kebab(table)}-a\ntable: public.${table}\nrename: { column: user_name, to: username }\n${backfill}`,
  [`${kebab(table)}-b.yaml`]: `plan: ${kebab(table)}-b\ntable: public.${table}\n${SPLIT_CHANGE}\n${backfill}`,
});

async function main(): Promise<void> {
  const rows = Number(option('rows', '1000000').replaceAll('_', ''));
  const rounds = Number(option('rounds', '2'));
  const server = await benchServer();
  const scratch = await scratchDatabase(server.adminUrl, `pgshift_bench_joint_${process.pid}`);
  const { db, dbUrl } = scratch;
  try {
    const version = (await db.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v;
    console.log(
      `pgshift joint backfill benchmark: ${rows.toLocaleString('en')} rows, two plans (rename + split) on one table, PostgreSQL ${version}, ` +
        `${server.description}, ${os.cpus().length} CPUs; load average at start ${loadAverage()}`,
    );
    const apart: Figures[] = [];
    const together: Figures[] = [];
    for (let round = 1; round <= rounds; round++) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-bench-joint-'));
      const tables = { apart: `joint_apart_${round}`, together: `joint_together_${round}` };
      for (const table of Object.values(tables)) {
        await load(db, table, rows);
        for (const [file, text] of Object.entries(plans(table))) await writeFile(path.join(dir, file), text);
      }
      const names = (table: string): string[] => [`${kebab(table)}-a`, `${kebab(table)}-b`];
      await cli(dbUrl, dir, ['apply', ...names(tables.apart), ...names(tables.together), '--phase', 'dual-write']);
      for (const table of Object.values(tables)) await db.query(`VACUUM ANALYZE ${table}`);
      const runApart = async (): Promise<Figures> =>
        measure(db, tables.apart, async () => {
          let stepsMs = 0;
          for (const name of names(tables.apart)) stepsMs += await cli(dbUrl, dir, ['apply', name, '--phase', 'backfill']);
          return stepsMs;
        });
      const runTogether = async (): Promise<Figures> =>
        measure(db, tables.together, () => cli(dbUrl, dir, ['apply', ...names(tables.together), '--phase', 'backfill']));
      if (round % 2 === 1) {
        apart.push(await runApart());
        together.push(await runTogether());
      } else {
        together.push(await runTogether());
        apart.push(await runApart());
      }
      const a = apart.at(-1)!;
      const t = together.at(-1)!;
      console.log(`round ${round} (${round % 2 === 1 ? 'one after the other first' : 'one walk first'}):`);
      console.log(`  one after the other: ${show(a)}`);
      console.log(`  one walk for both:   ${show(t)}`);
      console.log(
        `  ratio (one walk / one after the other): time ${(t.ms / a.ms).toFixed(2)}× (walks and final checks alone ${(t.stepsMs / a.stepsMs).toFixed(2)}×), WAL ${(t.walBytes / a.walBytes).toFixed(2)}×, row versions ${(t.rowVersions / a.rowVersions).toFixed(2)}×`,
      );
    }
    const sum = (fs: Figures[], k: keyof Figures): number => fs.reduce((s, f) => s + f[k], 0);
    console.log(
      `all ${rounds} rounds, one walk / one after the other: time ${(sum(together, 'ms') / sum(apart, 'ms')).toFixed(2)}× ` +
        `(walks and final checks alone ${(sum(together, 'stepsMs') / sum(apart, 'stepsMs')).toFixed(2)}×), ` +
        `WAL ${(sum(together, 'walBytes') / sum(apart, 'walBytes')).toFixed(2)}×, row versions ${(sum(together, 'rowVersions') / sum(apart, 'rowVersions')).toFixed(2)}×; ` +
        `load average at the end ${loadAverage()}`,
    );
  } finally {
    await scratch.drop();
    await server.stop();
  }
}

async function load(db: pg.Client, table: string, rows: number): Promise<void> {
  await db.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, full_name text NOT NULL, user_name text, email text)`);
  await db.query(
    `INSERT INTO ${table} (full_name, user_name, email)
     SELECT 'First' || g || ' Last' || g, 'user' || g, 'u' || g || '@example.com' FROM generate_series(1, $1::int8) g`,
    [rows],
  );
}

/** Wall time, WAL written and row versions made on `table` by `run` (the sum of its CLI runs' steps), after a CHECKPOINT. */
async function measure(db: pg.Client, table: string, run: () => Promise<number>): Promise<Figures> {
  await db.query('CHECKPOINT');
  const before = await counters(db, table);
  const started = performance.now();
  const stepsMs = await run();
  const ms = performance.now() - started;
  const after = await counters(db, table);
  return { ms, stepsMs, walBytes: Number(after.lsnDiff(before.lsn)), rowVersions: after.updated - before.updated };
}

async function counters(db: pg.Client, table: string): Promise<{ lsn: string; updated: number; lsnDiff: (from: string) => bigint }> {
  // The CLI's backends have exited, flushing their statistics; forget this session's cached snapshot of them.
  await db.query('SELECT pg_stat_clear_snapshot()');
  const { rows } = await db.query<{ lsn: string; updated: string }>(
    `SELECT pg_current_wal_lsn()::text AS lsn, coalesce((SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = $1::regclass), 0)::text AS updated`,
    [table],
  );
  const { lsn, updated } = rows[0]!;
  return { lsn, updated: Number(updated), lsnDiff: (from) => lsnBytes(lsn) - lsnBytes(from) };
}

/** `16/B374D848` as a byte position. */
function lsnBytes(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/** Run the real CLI as a child process; returns the time its backfill and final-check steps took (its debug log). A failure stops the benchmark. */
async function cli(dbUrl: string, dir: string, args: string[]): Promise<number> {
  const child = spawn(process.execPath, [BIN, 'plan', ...args, '--dir', dir, '--json'], {
    env: { ...process.env, DATABASE_URL: dbUrl, PGSHIFT_LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`migrate plan ${args.join(' ')} exited ${code}: ${stderr}`);
  let stepsMs = 0;
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; step?: string; ms?: number };
    if (entry.msg?.startsWith('step ') && entry.ms !== undefined && /^(fill |verify)/.test(entry.step ?? '')) stepsMs += entry.ms;
  }
  return stepsMs;
}

const show = (f: Figures): string =>
  `${(f.ms / 1000).toFixed(2)} s (walks and final checks ${(f.stepsMs / 1000).toFixed(2)} s), WAL ${(f.walBytes / 2 ** 20).toFixed(0)} MB, ${f.rowVersions.toLocaleString('en')} row versions`;
const loadAverage = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
