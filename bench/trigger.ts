/**
 * Trigger benchmark: what the dual-write trigger costs an application's
 * writes, against the same writes on a plain table and against the
 * application writing both sides itself. Prints figures; asserts nothing.
 *
 *   npm run bench:trigger -- [--rows 100000 --seconds 10 --rounds 5 --clients 2 --kinds split,rename --durable]
 *
 * For each change kind, three identical tables of N rows:
 * - `plain`: old code's writes (old columns only), no trigger;
 * - `app`: the application's own dual write, old and new columns in the same
 *   statement (the values computed by the application), no trigger;
 * - `trigger`: old code's writes, with the kind's plan applied up to
 *   `backfill` (the two-way sync trigger in place, every row filled).
 * pgbench (or, when no pgbench is installed, a Node loop doing the same)
 * runs an insert + update mix, half `UPDATE … WHERE id = random` and half
 * `INSERT`, each statement its own transaction, prepared, on every table in
 * turn; a round runs every table once, in an order rotated each round, and
 * the figures are the medians over the rounds. Sessions commit with
 * `synchronous_commit = off` unless `--durable`: the run is then CPU-bound,
 * which shows the trigger's cost at its largest.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { apply } from '../src/api/apply.js';
import { ident } from '../src/db/ident.js';
import { silentLogger } from '../src/log.js';
import { parsePlan } from '../src/plan/load.js';
import { benchServer } from './server.js';

/** A change kind the benchmark can run, with the writes of each variant. */
interface KindSpec {
  readonly kind: string;
  /** The plan's change, as YAML. */
  readonly change: string;
  /** Columns the table is created with (the plain and app tables also get the new ones, filled). */
  readonly newColumns: readonly { name: string; type: string; fill: string }[];
  /** Old code's UPDATE SET list, over pgbench variables `:id` and `:r`. */
  readonly oldSet: string;
  /** The application's additional SET list when it writes both sides. */
  readonly newSet: string;
  /** New columns' values for an INSERT by an application writing both sides. */
  readonly newValues: string;
}

const KINDS: Readonly<Record<string, KindSpec>> = {
  split: {
    kind: 'split',
    change: `split:
  column: full_name
  into:
    - name: first_name
      type: text
      using: split_part(full_name, ' ', 1)
    - name: last_name
      type: text
      using: nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)
  reverse: concat_ws(' ', first_name, last_name)`,
    newColumns: [
      { name: 'first_name', type: 'text', fill: `split_part(full_name, ' ', 1)` },
      { name: 'last_name', type: 'text', fill: `nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)` },
    ],
    oldSet: `full_name = 'First' || :r || ' Last' || :id`,
    newSet: `first_name = 'First' || :r, last_name = 'Last' || :id`,
    newValues: `'First' || :r, 'Last' || :r`,
  },
  rename: {
    kind: 'rename',
    change: `rename: { column: user_name, to: username }`,
    newColumns: [{ name: 'username', type: 'text', fill: 'user_name' }],
    oldSet: `user_name = 'user' || :r`,
    newSet: `username = 'user' || :r`,
    newValues: `'user' || :r`,
  },
};

type Variant = 'plain' | 'app' | 'trigger';
const VARIANTS: readonly Variant[] = ['plain', 'app', 'trigger'];

/** What to run. */
export interface TriggerBenchOptions {
  readonly rows: number;
  readonly seconds: number;
  readonly rounds: number;
  readonly clients: number;
  readonly kinds: readonly string[];
  /** Commit with the server's synchronous_commit (on) rather than off. */
  readonly durable: boolean;
  /** Where progress lines go (default: nowhere). */
  readonly log?: (line: string) => void;
}

/** The figures of one kind. */
export interface KindFigures {
  readonly kind: string;
  /** TPS of each round, per variant. */
  readonly rounds: Readonly<Record<Variant, readonly number[]>>;
  /** Median TPS per variant. */
  readonly median: Readonly<Record<Variant, number>>;
  /** Median trigger TPS / median plain TPS. */
  readonly triggerVsPlain: number;
  /** Median trigger TPS / median app-side dual write TPS. */
  readonly triggerVsApp: number;
  /** Median app-side dual write TPS / median plain TPS. */
  readonly appVsPlain: number;
}

/** Everything a run measured, for printing or for a unified benchmark. */
export interface TriggerFigures {
  readonly server: string;
  readonly version: string;
  readonly driver: string;
  readonly options: Omit<TriggerBenchOptions, 'log'>;
  readonly cpus: number;
  readonly loadBefore: readonly number[];
  readonly loadAfter: readonly number[];
  readonly kinds: readonly KindFigures[];
}

/** Defaults: 100k rows, 5 rounds of 10 s per table, 2 clients, split and rename. */
export const DEFAULT_TRIGGER_BENCH: TriggerBenchOptions = { rows: 100_000, seconds: 10, rounds: 5, clients: 2, kinds: ['split', 'rename'], durable: false };

/**
 * Run the trigger benchmark against `adminUrl` (a superuser URL; a database
 * is created and dropped), or against its own embedded PostgreSQL when none
 * is given, and return the figures.
 */
export async function runTriggerBench(options: TriggerBenchOptions = DEFAULT_TRIGGER_BENCH, adminUrl?: string): Promise<TriggerFigures> {
  const log = options.log ?? ((): void => undefined);
  const server = adminUrl ? { adminUrl, description: 'given server', stop: async (): Promise<void> => undefined } : await benchServer();
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  const dbName = `pgshift_bench_trigger_${process.pid}`;
  await admin.query(`CREATE DATABASE ${ident(dbName)}`);
  const url = new URL(server.adminUrl);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const db = new pg.Client({ connectionString: dbUrl });
  await db.connect();
  try {
    const version = (await db.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v;
    const pgbench = findPgbench();
    const loadBefore = os.loadavg();
    log(`pgshift trigger benchmark: ${options.rows.toLocaleString('en')} rows, PostgreSQL ${version}, ${server.description}, ${os.cpus().length} CPUs`);
    log(
      `${pgbench ? `pgbench (${pgbench})` : 'Node loop (no pgbench found)'}, ${options.clients} clients, ${options.rounds} rounds × ${options.seconds} s per table, ` +
        `synchronous_commit ${options.durable ? 'on' : 'off'}; load average at start ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
    );
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-bench-trigger-'));
    const kinds = options.kinds.map((k) => {
      const spec = KINDS[k];
      if (!spec) throw new Error(`unknown kind ${k}: one of ${Object.keys(KINDS).join(', ')}`);
      return spec;
    });
    const t0 = performance.now();
    for (const spec of kinds) for (const variant of VARIANTS) await prepareTable(db, dbUrl, spec, variant, options.rows);
    log(`loaded ${kinds.length * VARIANTS.length} tables in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const runs = kinds.flatMap((spec) => VARIANTS.map((variant) => ({ spec, variant })));
    const tps = new Map<string, number[]>(runs.map((r) => [tableName(r.spec, r.variant), []]));
    for (let round = 0; round < options.rounds; round++) {
      const order = runs.map((_, i) => runs[(i + round) % runs.length]!);
      const line: string[] = [];
      for (const { spec, variant } of order) {
        const table = tableName(spec, variant);
        await db.query(`VACUUM ${ident(table)}`);
        await db.query('CHECKPOINT');
        const figure = pgbench
          ? await runPgbench(pgbench, dbUrl, dir, spec, variant, options)
          : await runNodeLoop(dbUrl, spec, variant, options);
        tps.get(table)!.push(figure);
        line.push(`${table} ${figure.toFixed(0)}`);
      }
      log(`round ${round + 1}: ${line.join(', ')}`);
    }
    const figures: KindFigures[] = kinds.map((spec) => {
      const rounds = Object.fromEntries(VARIANTS.map((v) => [v, tps.get(tableName(spec, v))!])) as Record<Variant, number[]>;
      const median = Object.fromEntries(VARIANTS.map((v) => [v, medianOf(rounds[v])])) as Record<Variant, number>;
      return {
        kind: spec.kind,
        rounds,
        median,
        triggerVsPlain: median.trigger / median.plain,
        triggerVsApp: median.trigger / median.app,
        appVsPlain: median.app / median.plain,
      };
    });
    return {
      server: server.description,
      version,
      driver: pgbench ? `pgbench ${pgbench}` : 'node loop',
      options: { rows: options.rows, seconds: options.seconds, rounds: options.rounds, clients: options.clients, kinds: options.kinds, durable: options.durable },
      cpus: os.cpus().length,
      loadBefore,
      loadAfter: os.loadavg(),
      kinds: figures,
    };
  } finally {
    await db.end().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${ident(dbName)} WITH (FORCE)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
    await server.stop();
  }
}

const tableName = (spec: KindSpec, variant: Variant): string => `bench_${spec.kind}_${variant}`;

/**
 * One table of the users' shape with `rows` rows. The plain and app tables
 * get the new columns up front, filled; the trigger table gets them from the
 * plan's `expand` and `backfill`. All are then rewritten (VACUUM FULL) so
 * they start equally packed, and analyzed.
 */
async function prepareTable(db: pg.Client, dbUrl: string, spec: KindSpec, variant: Variant, rows: number): Promise<void> {
  const table = tableName(spec, variant);
  const extra = variant === 'trigger' ? '' : spec.newColumns.map((c) => `, ${ident(c.name)} ${c.type}`).join('');
  await db.query(`CREATE TABLE ${ident(table)} (id bigserial PRIMARY KEY, full_name text NOT NULL, user_name text, email text${extra})`);
  const fills = variant === 'trigger' ? '' : spec.newColumns.map((c) => `, ${c.fill}`).join('');
  const names = variant === 'trigger' ? '' : spec.newColumns.map((c) => `, ${ident(c.name)}`).join('');
  await db.query(
    `INSERT INTO ${ident(table)} (full_name, user_name, email${names})
     SELECT full_name, user_name, email${fills}
       FROM (SELECT 'First' || g || ' Last' || g AS full_name, 'user' || g AS user_name, 'u' || g || '@example.com' AS email FROM generate_series(1, $1::int8) g) s`,
    [rows],
  );
  if (variant === 'trigger') {
    const plan = parsePlan(`plan: ${table.replaceAll('_', '-')}\ntable: public.${table}\n${spec.change}\n`, `${table}.yaml`);
    const [outcome] = await apply([plan], 'backfill', { databaseUrl: dbUrl, log: silentLogger });
    if (outcome?.error) throw outcome.error;
  }
  await db.query(`VACUUM FULL ${ident(table)}`);
  await db.query(`ANALYZE ${ident(table)}`);
}

/** The workload's two statements for a variant: an UPDATE of a random row and an INSERT. */
function statements(spec: KindSpec, variant: Variant, rows: number): { update: string; insert: string } {
  const table = ident(tableName(spec, variant));
  const both = variant === 'app';
  const set = both ? `${spec.oldSet}, ${spec.newSet}` : spec.oldSet;
  const newNames = both ? spec.newColumns.map((c) => `, ${ident(c.name)}`).join('') : '';
  const newValues = both ? `, ${spec.newValues}` : '';
  return {
    update: `\\set id random(1, ${rows})\n\\set r random(1, 1000000000)\nUPDATE ${table} SET ${set} WHERE id = :id;\n`,
    insert:
      `\\set r random(1, 1000000000)\n` +
      `INSERT INTO ${table} (full_name, user_name, email${newNames}) VALUES ('First' || :r || ' Last' || :r, 'user' || :r, 'u' || :r || '@example.com'${newValues});\n`,
  };
}

/** Debian's pgbench, or one on PATH; undefined when there is none. */
function findPgbench(): string | undefined {
  const debian = '/usr/lib/postgresql/15/bin/pgbench';
  if (existsSync(debian)) return debian;
  const found = spawnSync('sh', ['-c', 'command -v pgbench'], { encoding: 'utf8' });
  return found.status === 0 && found.stdout.trim() ? found.stdout.trim() : undefined;
}

async function runPgbench(bin: string, dbUrl: string, dir: string, spec: KindSpec, variant: Variant, options: TriggerBenchOptions): Promise<number> {
  const { update, insert } = statements(spec, variant, options.rows);
  const base = path.join(dir, tableName(spec, variant));
  await writeFile(`${base}-update.sql`, update);
  await writeFile(`${base}-insert.sql`, insert);
  const u = new URL(dbUrl);
  const env = {
    ...process.env,
    PGHOST: u.hostname,
    PGPORT: u.port || '5432',
    PGUSER: decodeURIComponent(u.username),
    PGPASSWORD: decodeURIComponent(u.password),
    PGDATABASE: u.pathname.slice(1),
    PGOPTIONS: options.durable ? '' : '-c synchronous_commit=off',
  };
  const args = ['-n', '-M', 'prepared', '-c', String(options.clients), '-j', String(options.clients), '-T', String(options.seconds), '-f', `${base}-update.sql@1`, '-f', `${base}-insert.sql@1`];
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(bin, args, { env }, (error, out, err) => (error ? reject(new Error(`pgbench failed: ${err || error.message}`)) : resolve(out))),
  );
  const match = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(stdout);
  if (!match) throw new Error(`no tps in pgbench's output:\n${stdout}`);
  return Number(match[1]);
}

/** The same mix from Node, for machines without pgbench: each client alternates at random between the two statements. */
async function runNodeLoop(dbUrl: string, spec: KindSpec, variant: Variant, options: TriggerBenchOptions): Promise<number> {
  const { update, insert } = statements(spec, variant, options.rows);
  // pgbench's `:id` / `:r` become $1 / $2 of a prepared statement.
  const toSql = (script: string): string => script.split('\n').filter((l) => l && !l.startsWith('\\')).join(' ').replace(/;$/, '').replaceAll(':id', '$1').replaceAll(':r', '$2');
  const updateSql = toSql(update).replace(/\$1/g, '$1::int8').replace(/\$2/g, '$2::int8');
  const insertSql = toSql(insert).replace(/\$2/g, '$1::int8');
  const deadline = performance.now() + options.seconds * 1000;
  let count = 0;
  await Promise.all(
    Array.from({ length: options.clients }, async () => {
      const client = new pg.Client({ connectionString: dbUrl, options: options.durable ? undefined : '-c synchronous_commit=off' });
      await client.connect();
      try {
        while (performance.now() < deadline) {
          const r = 1 + Math.floor(Math.random() * 1e9);
          if (Math.random() < 0.5) await client.query({ name: 'u', text: updateSql, values: [1 + Math.floor(Math.random() * options.rows), r] });
          else await client.query({ name: 'i', text: insertSql, values: [r] });
          count++;
        }
      } finally {
        await client.end();
      }
    }),
  );
  return count / options.seconds;
}

function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The figures as the lines the benchmark prints. */
export function formatTriggerFigures(f: TriggerFigures): string[] {
  const lines = [
    '',
    `median TPS over ${f.options.rounds} rounds (${f.options.rows.toLocaleString('en')} rows, ${f.options.clients} clients, ${f.options.seconds} s each, synchronous_commit ${f.options.durable ? 'on' : 'off'}, ${f.driver}):`,
  ];
  for (const k of f.kinds) {
    lines.push(
      `  ${k.kind.padEnd(7)} plain ${k.median.plain.toFixed(0).padStart(6)}  app-side dual write ${k.median.app.toFixed(0).padStart(6)}  pgshift trigger ${k.median.trigger.toFixed(0).padStart(6)}` +
        `   trigger/plain ${k.triggerVsPlain.toFixed(2)}  trigger/app-dual ${k.triggerVsApp.toFixed(2)}  app-dual/plain ${k.appVsPlain.toFixed(2)}`,
    );
  }
  lines.push(`load average at end ${f.loadAfter.map((l) => l.toFixed(2)).join(' ')}`);
  return lines;
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : process.env[`BENCH_${name.toUpperCase()}`];
}

async function main(): Promise<void> {
  const num = (name: string, fallback: number): number => Number(option(name)?.replaceAll('_', '') ?? fallback);
  const options: TriggerBenchOptions = {
    rows: num('rows', DEFAULT_TRIGGER_BENCH.rows),
    seconds: num('seconds', DEFAULT_TRIGGER_BENCH.seconds),
    rounds: num('rounds', DEFAULT_TRIGGER_BENCH.rounds),
    clients: num('clients', DEFAULT_TRIGGER_BENCH.clients),
    kinds: option('kinds')?.split(',') ?? DEFAULT_TRIGGER_BENCH.kinds,
    durable: process.argv.includes('--durable'),
    log: (line) => console.log(line),
  };
  const figures = await runTriggerBench(options, process.env.BENCH_DATABASE_URL);
  for (const line of formatTriggerFigures(figures)) console.log(line);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
