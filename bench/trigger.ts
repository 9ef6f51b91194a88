/**
 * Trigger benchmark: what the dual-write trigger costs an application's
 * writes, against the same writes on a plain table and against the
 * application writing both sides itself. Prints figures; asserts nothing.
 *
 *   npm run bench:trigger -- [--rows 100000 --seconds 10 --rounds 5 --clients 2 --kinds split,rename --durable --server durable|cpu-bound --breakdown]
 *
 * For each change kind, three identical tables of N rows:
 * - `plain`: old code's writes (old columns only), no trigger;
 * - `app`: the application's own dual write, old and new columns in the same
 *   statement (the values computed by the application), no trigger;
 * - `trigger`: old code's writes, with the kind's plan applied up to
 *   `backfill` (the two-way sync trigger in place, every row filled);
 * - `floor`: old code's writes on a copy of `plain` with an empty plpgsql
 *   row trigger (`RETURN NEW`): what calling any plpgsql trigger costs,
 *   the least a trigger-based dual write can cost.
 * pgbench (or, when no pgbench is installed, a Node loop doing the same)
 * runs an insert + update mix, half `UPDATE … WHERE id = random` and half
 * `INSERT`, each statement its own transaction, prepared, on every table in
 * turn; a round runs every table once, in an order rotated each round, and
 * the figures are the medians over the rounds. Sessions commit with
 * `synchronous_commit = off` unless `--durable`: the run is then CPU-bound,
 * which shows the trigger's cost at its largest.
 *
 * `--breakdown` then shows where a trigger's time goes, one element at a
 * time: server CPU per one-row statement (each its own transaction, as an
 * application's writes mostly are) and per row of a backfill-like bulk
 * UPDATE, for triggers from empty to the full split trigger in the forms
 * pgshift has generated. It reads the backend's CPU time from
 * /proc/<pid>/schedstat (the server must run on this machine, as the
 * embedded one does), which a busy machine disturbs far less than elapsed
 * time; the minimum over the repetitions is kept.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { apply } from '../src/api/apply.js';
import type { PlanFacts } from '../src/changes/model.js';
import { resolveChange } from '../src/changes/kinds/registry.js';
import { objectNames, syncFunction, syncTriggers, type SyncEvents } from '../src/changes/sql-objects.js';
import { ident } from '../src/db/ident.js';
import { silentLogger } from '../src/log.js';
import { parsePlan } from '../src/plan/load.js';
import { benchServer, scratchDatabase, type ServerKind } from './server.js';
import { SPLIT_CHANGE } from '../test/helpers/fixtures.js';

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
    change: SPLIT_CHANGE,
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

type Variant = 'plain' | 'app' | 'trigger' | 'floor';
const VARIANTS: readonly Variant[] = ['plain', 'app', 'trigger', 'floor'];

/** What to run. */
export interface TriggerBenchOptions {
  readonly rows: number;
  readonly seconds: number;
  readonly rounds: number;
  readonly clients: number;
  readonly kinds: readonly string[];
  /** Commit with the server's synchronous_commit (on) rather than off. */
  readonly durable: boolean;
  /** The embedded server to start when no URL is given (bench/server.ts); durable by default. */
  readonly server?: ServerKind | undefined;
  /** Also measure where the trigger's time goes (see {@link TriggerBreakdown}). */
  readonly breakdown?: boolean;
  /** Where progress lines go (default: nowhere). */
  readonly log?: (line: string) => void;
}

/** Server CPU of one variant, in µs over the same work without a trigger. */
export interface BreakdownLine {
  readonly variant: string;
  /** Per one-row UPDATE of the old column, each in its own transaction. */
  readonly update: number;
  /** Per one-row INSERT, each in its own transaction. */
  readonly insert: number;
  /** Per row of a bulk UPDATE setting the new columns in a backfill transaction. */
  readonly backfillRow: number;
}

/** Where the split trigger's time goes; `base` is the cost without a trigger, the lines are over it. */
export interface TriggerBreakdown {
  readonly base: { readonly update: number; readonly insert: number; readonly backfillRow: number };
  readonly lines: readonly BreakdownLine[];
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
  /** Median TPS under an empty plpgsql trigger / median app-side dual write TPS: the most any plpgsql trigger can reach. */
  readonly floorVsApp: number;
  /** Median trigger TPS / median TPS under an empty plpgsql trigger: the sync trigger against the cost of having any trigger. */
  readonly triggerVsFloor: number;
  /** Median server CPU per transaction (µs) per variant, when the server's processes could be read. */
  readonly cpuPerTx: Readonly<Record<Variant, number>> | undefined;
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
  readonly breakdown?: TriggerBreakdown | undefined;
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
  const server = adminUrl ? { adminUrl, description: 'given server', stop: async (): Promise<void> => undefined } : await benchServer(options.server);
  const scratch = await scratchDatabase(server.adminUrl, `pgshift_bench_trigger_${process.pid}`);
  const { db, dbUrl } = scratch;
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
    const cpu = new Map<string, number[]>(runs.map((r) => [tableName(r.spec, r.variant), []]));
    for (let round = 0; round < options.rounds; round++) {
      const order = runs.map((_, i) => runs[(i + round) % runs.length]!);
      const line: string[] = [];
      for (const { spec, variant } of order) {
        const table = tableName(spec, variant);
        await db.query(`VACUUM ${ident(table)}`);
        await db.query('CHECKPOINT');
        const figure = pgbench ? await runPgbench(pgbench, db, dbUrl, dir, spec, variant, options) : await runNodeLoop(dbUrl, spec, variant, options);
        tps.get(table)!.push(figure.tps);
        if (figure.cpuPerTx !== undefined) cpu.get(table)!.push(figure.cpuPerTx);
        line.push(`${table} ${figure.tps.toFixed(0)}${figure.cpuPerTx === undefined ? '' : ` (${figure.cpuPerTx.toFixed(1)} µs)`}`);
      }
      log(`round ${round + 1}: ${line.join(', ')}`);
    }
    const figures: KindFigures[] = kinds.map((spec) => {
      const rounds = Object.fromEntries(VARIANTS.map((v) => [v, tps.get(tableName(spec, v))!])) as Record<Variant, number[]>;
      const median = Object.fromEntries(VARIANTS.map((v) => [v, medianOf(rounds[v])])) as Record<Variant, number>;
      const cpus = VARIANTS.map((v) => cpu.get(tableName(spec, v))!);
      const cpuPerTx = cpus.every((c) => c.length === options.rounds)
        ? (Object.fromEntries(VARIANTS.map((v, i) => [v, medianOf(cpus[i]!)])) as Record<Variant, number>)
        : undefined;
      return {
        cpuPerTx,
        kind: spec.kind,
        rounds,
        median,
        triggerVsPlain: median.trigger / median.plain,
        triggerVsApp: median.trigger / median.app,
        appVsPlain: median.app / median.plain,
        floorVsApp: median.floor / median.app,
        triggerVsFloor: median.trigger / median.floor,
      };
    });
    const breakdown = options.breakdown && kinds.some((k) => k.kind === 'split') ? await measureBreakdown(db, log) : undefined;
    return {
      breakdown,
      server: server.description,
      version,
      driver: pgbench ? `pgbench ${pgbench}` : 'node loop',
      options: {
        rows: options.rows,
        seconds: options.seconds,
        rounds: options.rounds,
        clients: options.clients,
        kinds: options.kinds,
        durable: options.durable,
      },
      cpus: os.cpus().length,
      loadBefore,
      loadAfter: os.loadavg(),
      kinds: figures,
    };
  } finally {
    await scratch.drop();
    await server.stop();
  }
}

const tableName = (spec: KindSpec, variant: Variant): string => `bench_${spec.kind}_${variant}`;

/**
 * One table of the users' shape with `rows` rows. The plain, app and floor
 * tables get the new columns up front, filled; the trigger table gets them
 * from the plan's `expand` and `backfill`; the floor table gets an empty
 * plpgsql trigger. All are then rewritten (VACUUM FULL) so they start
 * equally packed, and analyzed.
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
  if (variant === 'floor') {
    await db.query(`CREATE OR REPLACE FUNCTION bench_floor() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`);
    await db.query(`CREATE TRIGGER bench_floor BEFORE INSERT OR UPDATE ON ${ident(table)} FOR EACH ROW EXECUTE FUNCTION bench_floor()`);
  }
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

const BACKFILL_GUARD = `current_setting('pgshift.backfill', true) IS DISTINCT FROM 'on'`;

/**
 * The breakdown's triggers, on a scratch copy of the split trigger table:
 * plpgsql's floor (an empty body), what a WHEN clause and a function-level
 * SET add to it, and the split trigger's body in the forms pgshift has
 * generated: calls of the expression functions under a fixed search_path
 * with the WHEN clause (plans started before inlining), the expressions
 * inlined over blocks of variables, and inlined over the NEW record (this
 * release, no WHEN clause).
 */
/** A breakdown line: its triggers' functions (each fired on its events), or none. */
interface BreakdownVariant {
  readonly name: string;
  readonly fns: readonly { readonly sql: string; readonly events: SyncEvents }[];
  readonly when: string | null;
  readonly app?: boolean;
}

function breakdownVariants(facts: PlanFacts, plan: string): BreakdownVariant[] {
  const parsed = parsePlan(`plan: ${plan}\ntable: public.bench_split_trigger\n${KINDS.split!.change}\n`, 'split.yaml');
  const change = resolveChange(parsed.change, facts);
  // A variant's functions in public, named after it: the UPDATE (or only) one `fn`, the INSERT one `fn_insert`.
  const names = (fn: string): ReturnType<typeof objectNames> => ({
    ...objectNames(plan, facts),
    syncFunction: `public.${ident(fn)}`,
    insertFunction: `public.${ident(`${fn}_insert`)}`,
  });
  /** The sync functions of the form `f` makes, each on the events its trigger fires on. */
  const sync = (fn: string, f: PlanFacts): BreakdownVariant['fns'] =>
    syncTriggers(names(fn), f).map((t) => ({ sql: syncFunction(change, names(fn), f, 'two-way', t), events: t.events }));
  const inline = facts.inline;
  const empty = (fn: string, set = ''): string =>
    `CREATE OR REPLACE FUNCTION public.${ident(fn)}() RETURNS trigger LANGUAGE plpgsql ${set} AS $$ BEGIN RETURN NEW; END $$`;
  const both = (sql: string): BreakdownVariant['fns'] => [{ sql, events: 'INSERT OR UPDATE' }];
  const variants: BreakdownVariant[] = [
    { name: 'app-side dual write (no trigger, writes both sides)', fns: [], when: null, app: true },
    { name: 'empty plpgsql trigger (RETURN NEW)', fns: both(empty('bench_empty')), when: null },
    { name: '  + WHEN (backfill guard)', fns: both(empty('bench_empty')), when: BACKFILL_GUARD },
    { name: '  + SET search_path', fns: both(empty('bench_empty_set', `SET search_path = ${facts.searchPath}`)), when: null },
    {
      name: 'split: calls, SET search_path, WHEN',
      fns: sync('bench_calls', { ...facts, inline: undefined }),
      when: BACKFILL_GUARD,
    },
  ];
  if (inline) {
    const blocks = { ...facts, inline: { ...inline, forwardOnNew: undefined, reverseOnNew: undefined, perEvent: undefined } };
    const flat = { ...facts, inline: { ...inline, perEvent: undefined } };
    variants.push(
      { name: 'split: inlined over variables, WHEN', fns: sync('bench_blocks_when', blocks), when: BACKFILL_GUARD },
      { name: 'split: inlined over variables', fns: sync('bench_blocks', blocks), when: null },
    );
    if (inline.forwardOnNew && inline.reverseOnNew) {
      variants.push(
        { name: 'split: inlined over NEW, one trigger', fns: sync('bench_flat', flat), when: null },
        { name: 'split: one trigger per event (this release)', fns: sync('bench_event', { ...facts, inline: { ...inline, perEvent: true } }), when: null },
      );
    }
  }
  return variants;
}

async function measureBreakdown(db: pg.Client, log: (line: string) => void, statements = 3000, bulkRows = 20000, repeats = 5): Promise<TriggerBreakdown> {
  const facts = (await db.query<{ facts: PlanFacts }>(`SELECT facts FROM pgshift.plans WHERE name = 'bench-split-trigger'`)).rows[0]!.facts;
  const variants = breakdownVariants(facts, 'bench-split-trigger');
  const scratch = 'bench_breakdown';
  await db.query(`CREATE TABLE ${scratch} (LIKE bench_split_trigger INCLUDING ALL)`);
  await db.query(`INSERT INTO ${scratch} SELECT * FROM bench_split_trigger ORDER BY id LIMIT ${bulkRows}`);
  await db.query(`VACUUM ANALYZE ${scratch}`);
  // One statement per transaction, as an application's: COMMIT inside a procedure.
  await db.query(`CREATE PROCEDURE bench_statements(n int, op text, both_sides bool) LANGUAGE plpgsql AS $$
    BEGIN
      FOR i IN 1..n LOOP
        IF op = 'update' AND both_sides THEN
          UPDATE ${scratch} SET full_name = 'First' || i || ' Last' || n, first_name = 'First' || i, last_name = 'Last' || n WHERE id = i;
        ELSIF op = 'update' THEN
          UPDATE ${scratch} SET full_name = 'First' || i || ' Last' || n WHERE id = i;
        ELSIF both_sides THEN
          INSERT INTO ${scratch} (full_name, user_name, email, first_name, last_name) VALUES ('First' || i || ' Last' || n, 'u', 'e', 'First' || i, 'Last' || n);
        ELSE
          INSERT INTO ${scratch} (full_name, user_name, email) VALUES ('First' || i || ' Last' || n, 'u', 'e');
        END IF;
        COMMIT;
      END LOOP;
    END $$`);
  const pid = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const schedstat = `/proc/${pid}/schedstat`;
  const cpu = existsSync(schedstat) ? (): number => Number(readFileSync(schedstat, 'utf8').split(' ')[0]) / 1000 : (): number => performance.now() * 1000;
  if (!existsSync(schedstat)) log('breakdown: the server runs elsewhere, so elapsed time stands in for its CPU time (noisier)');
  const measure = async (work: () => Promise<unknown>, per: number): Promise<number> => {
    const t = cpu();
    await work();
    return (cpu() - t) / per;
  };
  const all: BreakdownVariant[] = [{ name: 'no trigger', fns: [], when: null }, ...variants];
  for (const v of all) for (const f of v.fns) await db.query(f.sql);
  const results = new Map(all.map((v) => [v.name, { update: [] as number[], insert: [] as number[], backfillRow: [] as number[] }]));
  await db.query(`SET synchronous_commit = off`);
  for (let r = 0; r < repeats; r++) {
    for (const v of all) {
      const triggers = v.fns.map((f, i) => ({ name: `bench_breakdown_${i}`, fn: /FUNCTION (public\.\S+)\(\)/.exec(f.sql)![1]!, events: f.events }));
      for (const t of triggers)
        await db.query(`CREATE TRIGGER ${t.name} BEFORE ${t.events} ON ${scratch} FOR EACH ROW${v.when ? ` WHEN (${v.when})` : ''} EXECUTE FUNCTION ${t.fn}()`);
      const out = results.get(v.name)!;
      out.update.push(await measure(() => db.query(`CALL bench_statements(${statements}, 'update', ${Boolean(v.app)})`), statements));
      out.insert.push(await measure(() => db.query(`CALL bench_statements(${statements}, 'insert', ${Boolean(v.app)})`), statements));
      await db.query('BEGIN');
      await db.query(`SELECT set_config('pgshift.backfill', 'on', true)`);
      out.backfillRow.push(
        await measure(
          () =>
            db.query(
              `UPDATE ${scratch} SET first_name = split_part(full_name, ' ', 1), last_name = nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name) WHERE id <= ${bulkRows}`,
            ),
          bulkRows,
        ),
      );
      await db.query('ROLLBACK');
      for (const t of triggers) await db.query(`DROP TRIGGER ${t.name} ON ${scratch}`);
      await db.query(`DELETE FROM ${scratch} WHERE id > ${bulkRows}`);
      await db.query(`VACUUM ${scratch}`);
    }
  }
  await db.query(`RESET synchronous_commit`);
  const min = (xs: number[]): number => Math.min(...xs);
  const none = results.get('no trigger')!;
  const base = { update: min(none.update), insert: min(none.insert), backfillRow: min(none.backfillRow) };
  return {
    base,
    lines: variants.map((v) => {
      const m = results.get(v.name)!;
      return { variant: v.name, update: min(m.update) - base.update, insert: min(m.insert) - base.insert, backfillRow: min(m.backfillRow) - base.backfillRow };
    }),
  };
}

/** Debian's pgbench, or one on PATH; undefined when there is none. */
function findPgbench(): string | undefined {
  const debian = '/usr/lib/postgresql/15/bin/pgbench';
  if (existsSync(debian)) return debian;
  const found = spawnSync('sh', ['-c', 'command -v pgbench'], { encoding: 'utf8' });
  return found.status === 0 && found.stdout.trim() ? found.stdout.trim() : undefined;
}

/** One run: transactions per second, and the server CPU each took (when the server's processes can be read). */
interface RunFigure {
  readonly tps: number;
  readonly cpuPerTx: number | undefined;
}

/**
 * Watch the CPU time of the backends serving `applicationName`, from their
 * `/proc/<pid>/schedstat`, every 100 ms until stopped; returns the total
 * from each backend's first reading to its last (a backend's last 100 ms can
 * be missed: the same for every variant). Undefined when the server's
 * processes cannot be read (it runs elsewhere).
 */
function watchBackendsCpu(db: pg.Client, applicationName: string): { stop(): Promise<number | undefined> } {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  let running = true;
  const read = (pid: number): number | undefined => {
    try {
      return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1000;
    } catch {
      return undefined;
    }
  };
  const loop = (async (): Promise<void> => {
    while (running) {
      // Asked every time: pgbench opens a first connection of its own before its clients'.
      const { rows } = await db.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, [applicationName]);
      for (const { pid } of rows) {
        if (first.has(pid)) continue;
        const v = read(pid);
        if (v !== undefined) first.set(pid, v);
      }
      for (const pid of first.keys()) {
        const v = read(pid);
        if (v !== undefined) last.set(pid, v);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      if (first.size === 0) return undefined;
      return [...first].reduce((sum, [pid, v]) => sum + (last.get(pid) ?? v) - v, 0);
    },
  };
}

async function runPgbench(
  bin: string,
  db: pg.Client,
  dbUrl: string,
  dir: string,
  spec: KindSpec,
  variant: Variant,
  options: TriggerBenchOptions,
): Promise<RunFigure> {
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
    PGAPPNAME: `pgshift-bench ${tableName(spec, variant)}`,
  };
  const watch = watchBackendsCpu(db, env.PGAPPNAME);
  const args = [
    '-n',
    '-M',
    'prepared',
    '-c',
    String(options.clients),
    '-j',
    String(options.clients),
    '-T',
    String(options.seconds),
    '-f',
    `${base}-update.sql@1`,
    '-f',
    `${base}-insert.sql@1`,
  ];
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(bin, args, { env }, (error, out, err) => (error ? reject(new Error(`pgbench failed: ${err || error.message}`)) : resolve(out))),
  ).finally(() => undefined);
  const cpu = await watch.stop();
  const match = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(stdout);
  const count = /number of transactions actually processed: (\d+)/.exec(stdout);
  if (!match || !count) throw new Error(`no tps in pgbench's output:\n${stdout}`);
  return { tps: Number(match[1]), cpuPerTx: cpu === undefined ? undefined : cpu / Number(count[1]) };
}

/** The same mix from Node, for machines without pgbench: each client alternates at random between the two statements. */
async function runNodeLoop(dbUrl: string, spec: KindSpec, variant: Variant, options: TriggerBenchOptions): Promise<RunFigure> {
  const { update, insert } = statements(spec, variant, options.rows);
  // pgbench's `:id` / `:r` become $1 / $2 of a prepared statement.
  const toSql = (script: string): string =>
    script
      .split('\n')
      .filter((l) => l && !l.startsWith('\\'))
      .join(' ')
      .replace(/;$/, '')
      .replaceAll(':id', '$1')
      .replaceAll(':r', '$2');
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
  return { tps: count / options.seconds, cpuPerTx: undefined };
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
    const c = k.cpuPerTx;
    const cpuLine = c
      ? `          server CPU per transaction (µs): plain ${c.plain.toFixed(1)}  app-side dual write ${c.app.toFixed(1)}  pgshift trigger ${c.trigger.toFixed(1)}  empty trigger ${c.floor.toFixed(1)}` +
        `   trigger/app-dual ${(c.trigger / c.app).toFixed(2)} (throughput, if CPU-bound: ${(c.app / c.trigger).toFixed(2)})`
      : undefined;
    lines.push(
      `  ${k.kind.padEnd(7)} plain ${k.median.plain.toFixed(0).padStart(6)}  app-side dual write ${k.median.app.toFixed(0).padStart(6)}  pgshift trigger ${k.median.trigger.toFixed(0).padStart(6)}` +
        `  empty plpgsql trigger ${k.median.floor.toFixed(0).padStart(6)}` +
        `   trigger/plain ${k.triggerVsPlain.toFixed(2)}  trigger/app-dual ${k.triggerVsApp.toFixed(2)}  app-dual/plain ${k.appVsPlain.toFixed(2)}  empty-trigger/app-dual ${k.floorVsApp.toFixed(2)}  trigger/empty-trigger ${k.triggerVsFloor.toFixed(2)}`,
    );
    if (cpuLine) lines.push(cpuLine);
  }
  if (f.breakdown) {
    const b = f.breakdown;
    lines.push('', 'where the time goes: server CPU in µs over the same work without a trigger (minimum of 5 repetitions)');
    lines.push(`  ${'variant'.padEnd(54)} one-row UPDATE  one-row INSERT  backfill, per row`);
    lines.push(
      `  ${'no trigger (absolute)'.padEnd(54)} ${b.base.update.toFixed(1).padStart(14)}  ${b.base.insert.toFixed(1).padStart(14)}  ${b.base.backfillRow.toFixed(2).padStart(16)}`,
    );
    for (const l of b.lines) {
      const sign = (x: number, digits: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;
      lines.push(`  ${l.variant.padEnd(54)} ${sign(l.update, 1).padStart(14)}  ${sign(l.insert, 1).padStart(14)}  ${sign(l.backfillRow, 2).padStart(16)}`);
    }
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
    server: option('server') === 'cpu-bound' ? 'cpu-bound' : 'durable',
    breakdown: process.argv.includes('--breakdown'),
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
