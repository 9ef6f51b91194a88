/**
 * Old-code gate benchmark: what the gate's statements in the sync trigger
 * cost the application's write path, against the very same trigger without
 * them. Prints figures; asserts nothing.
 *
 *   npm run bench:gate -- [--rows 100000 --seconds 5 --rounds 5 --clients 2]
 *
 * One table of N rows gets a split plan applied up to `dual-write` (so it
 * carries the sync trigger, two-way). Then, in alternating rounds (AB, BA,
 * …), the sync function is replaced by the one pgshift generates (with the
 * gate's mark) or by the same function with the mark's lines taken out, and
 * pgbench runs each old-code workload for `--seconds`:
 * - `single`: one-row `UPDATE … SET full_name` by primary key (the common
 *   old-code write: the mark's per-row count, and its once-a-second record);
 * - `bulk`: an `UPDATE` of 200 rows by key range (per-row cost dominates);
 * - `insert`: one-row `INSERT` giving the old column only.
 * pgbench's sessions commit with `synchronous_commit = off`, so the figure
 * is the write path's CPU cost, which a WAL flush per commit would hide.
 * Each figure is the median of the rounds' tps; the ratio is with the mark
 * over without it (1.00 = no cost).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { apply } from '../src/api/apply.js';
import { compileProgram } from '../src/changes/program.js';
import type { PlanFacts } from '../src/changes/model.js';
import { parsePlan } from '../src/plan/load.js';
import { splitPlanYaml } from '../test/helpers/fixtures.js';
import { benchServer, scratchDatabase } from './server.js';

const run = promisify(execFile);

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const raw = i >= 0 ? process.argv[i + 1] : process.env[`BENCH_${name.toUpperCase()}`];
  return raw ? Number(raw.replaceAll('_', '')) : fallback;
}

const ROWS = option('rows', 100_000);
const SECONDS = option('seconds', 5);
const ROUNDS = option('rounds', 5);
const CLIENTS = option('clients', 2);

/** pgbench: `PGBENCH`, else the newest one of an installed PostgreSQL. */
function pgbench(): string {
  if (process.env.PGBENCH) return process.env.PGBENCH;
  for (const major of [18, 17, 16, 15, 14]) {
    const bin = `/usr/lib/postgresql/${major}/bin/pgbench`;
    if (existsSync(bin)) return bin;
  }
  throw new Error('pgbench not found: install postgresql-client (or set PGBENCH)');
}

/** The sync function without the old-code gate's lines: each mark is a block from its comment to its END IF at the same indent. */
export function withoutMark(sql: string): string {
  const out: string[] = [];
  let skipTo: string | null = null;
  for (const line of sql.split('\n')) {
    if (skipTo !== null) {
      if (line === skipTo) skipTo = null;
      continue;
    }
    const m = /^(\s*)-- pgshift old-code gate/.exec(line);
    if (m) {
      skipTo = `${m[1]}END IF;`;
      continue;
    }
    out.push(line);
  }
  return out.join('\n');
}

const WORKLOADS: Readonly<Record<string, string>> = {
  single: `\\set id random(1, ${ROWS})\nUPDATE bench SET full_name = 'First' || :id || ' Upd' || random() WHERE id = :id;\n`,
  bulk: `\\set a random(1, ${ROWS - 200})\n\\set r random(1, 1000000)\nUPDATE bench SET full_name = 'F' || (id + :r) || ' L' WHERE id BETWEEN :a AND :a + 199;\n`,
  insert: `INSERT INTO bench (full_name) VALUES ('New ' || random());\n`,
};

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const bin = pgbench();
  const server = await benchServer();
  const scratch = await scratchDatabase(server.adminUrl, `pgshift_gate_${process.pid}`);
  const { db, dbUrl } = scratch;
  try {
    const version = (await db.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v;
    console.log(
      `pgshift old-code gate benchmark: ${ROWS.toLocaleString('en')} rows, ${CLIENTS} pgbench clients, ${ROUNDS} rounds of ${SECONDS} s per variant and workload`,
    );
    console.log(
      `PostgreSQL ${version}, ${server.description}, ${os.cpus().length} CPUs, load average at start ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    await db.query(`CREATE TABLE bench (id bigserial PRIMARY KEY, full_name text NOT NULL, user_name text, email text)`);
    await db.query(`INSERT INTO bench (full_name, user_name) SELECT 'First' || g || ' Last' || g, 'user' || g FROM generate_series(1, $1::int8) g`, [ROWS]);
    await db.query('VACUUM ANALYZE bench');
    const plan = parsePlan(splitPlanYaml('bench-gate', 'public.bench', '{}', '{ old_code_quiet: 0s }'), 'bench-gate.yaml');
    const [outcome] = await apply([plan], 'dual-write', { databaseUrl: dbUrl });
    if (outcome?.error) throw outcome.error;
    const facts = (await db.query<{ facts: PlanFacts }>(`SELECT facts FROM pgshift.plans WHERE name = 'bench-gate'`)).rows[0]!.facts;
    const step = compileProgram(plan, facts)['dual-write'].apply[0]!;
    const withMark = step.kind === 'sql' ? step.statements.at(-1)! : '';
    if (!withMark.includes('-- pgshift old-code gate')) throw new Error('the generated sync function has no old-code mark');
    const variants: Readonly<Record<string, string>> = { 'with gate': withMark, 'without gate': withoutMark(withMark) };

    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-bench-gate-'));
    const tps: Record<string, Record<string, number[]>> = {};
    const only = process.env.BENCH_WORKLOADS?.split(',');
    for (const [name, script] of Object.entries(WORKLOADS).filter(([n]) => !only || only.includes(n))) {
      const file = path.join(dir, `${name}.sql`);
      await writeFile(file, script);
      tps[name] = { 'with gate': [], 'without gate': [] };
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? ['with gate', 'without gate'] : ['without gate', 'with gate'];
        for (const variant of order) {
          await db.query(variants[variant]!);
          await db.query('CHECKPOINT');
          // Commits do not wait for the WAL flush: the write path's CPU cost is what the mark adds to, and a disk flush would hide it.
          const { stdout } = await run(bin, ['-n', '-M', 'prepared', '-c', String(CLIENTS), '-j', String(CLIENTS), '-T', String(SECONDS), '-f', file, dbUrl], {
            env: { ...process.env, PGOPTIONS: '-c synchronous_commit=off' },
          });
          const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
          if (!m) throw new Error(`pgbench printed no tps:\n${stdout}`);
          tps[name]![variant]!.push(Number(m[1]));
        }
      }
    }
    const recorded = (await db.query<{ sessions: string }>(`SELECT count(*) AS sessions FROM pgshift.old_code_writes`)).rows[0]!;

    console.log('');
    console.log('| workload | tps without gate (median) | tps with gate (median) | ratio with / without |');
    console.log('|---|---|---|---|');
    for (const [name, v] of Object.entries(tps)) {
      const a = median(v['without gate']!);
      const b = median(v['with gate']!);
      console.log(`| ${name} | ${a.toFixed(0)} | ${b.toFixed(0)} | **${(b / a).toFixed(3)}** |`);
    }
    for (const [name, v] of Object.entries(tps))
      console.log(
        `${name} rounds: without ${v['without gate']!.map((x) => x.toFixed(0)).join(' ')}; with ${v['with gate']!.map((x) => x.toFixed(0)).join(' ')}`,
      );
    console.log(`old_code_writes: ${recorded.sessions} sessions recorded (one row each: pgbench opens new sessions for every run)`);
    console.log(
      `load average at end ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await scratch.drop();
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
