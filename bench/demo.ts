/**
 * The zero-downtime demo: the example app's clients run the whole time while
 * a plan goes through its phases as releases would ship it, then every
 * acknowledged write is checked. Prints a per-phase table; exits 1 when the
 * bar (0 errors, 0 lost or wrong writes, no lock wait over lock_timeout +
 * 500 ms) is missed.
 *
 *   npm run demo                                   split plan, forward, 200k rows
 *   npm run demo -- --scenario rollback            forward to stop-write, back to nothing
 *   npm run demo -- --scenario all --plan rename   both scenarios, rename plan
 *   npm run demo -- --rows 20000 --window 1s --out table.md
 *   npm run demo -- --slow 0                       no slow request before each phase
 *   npm run demo -- --slow 1.5                     the slow request holds 1.5 × lock_timeout (default: 3s)
 *   npm run demo -- --hot 0                        no hot rows shared by all clients
 *
 * With DATABASE_URL set it runs there (it drops and recreates table `users`,
 * so it refuses unless `--reset` is given when that table exists); without,
 * it starts an embedded PostgreSQL and throws it away afterwards.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import pino from 'pino';
import { loadPlans } from '../src/index.js';
import { toMilliseconds } from '../src/plan/duration.js';
import { APPS, type AppName } from '../examples/app/index.js';
import { formatReport } from '../examples/load/report.js';
import { runScenario, SCENARIOS, type ScenarioName } from '../examples/load/scenario.js';
import { startEmbedded } from '../test/helpers/server.js';

const { values: args } = parseArgs({
  options: {
    plan: { type: 'string', default: 'split' },
    scenario: { type: 'string', default: 'forward' },
    rows: { type: 'string', default: '200000' },
    clients: { type: 'string', default: '8' },
    hot: { type: 'string', default: '50' },
    window: { type: 'string', default: '3s' },
    think: { type: 'string', default: '2ms' },
    slow: { type: 'string', default: '3s' },
    dir: { type: 'string', default: 'plans' },
    out: { type: 'string' },
    reset: { type: 'boolean', default: false },
  },
});

/**
 * pgshift's warnings (a lock not granted in time, who held it, the retry) are
 * the story of a slow request meeting a phase, so they are shown as they
 * happen, as plain lines among the progress; the rest would drown the table.
 */
const log = pino(
  { level: process.env.PGSHIFT_LOG_LEVEL ?? 'warn' },
  { write: (line: string) => void process.stderr.write(`  pgshift: ${(JSON.parse(line) as { msg: string }).msg}\n`) },
);

async function main(): Promise<number> {
  if (!(args.plan! in APPS)) throw new Error(`--plan must be one of ${Object.keys(APPS).join(', ')}`);
  const family = APPS[args.plan as AppName];
  const scenarios: ScenarioName[] =
    args.scenario === 'all' ? (Object.keys(SCENARIOS) as ScenarioName[]) : args.scenario! in SCENARIOS ? [args.scenario as ScenarioName] : [];
  if (!scenarios.length) throw new Error(`--scenario must be one of ${Object.keys(SCENARIOS).join(', ')}, all`);
  const [plan] = await loadPlans(args.dir!, [family.plan]);

  let url = process.env.DATABASE_URL;
  let stop = async (): Promise<void> => undefined;
  if (url) {
    await refuseToClobber(url, args.reset!);
  } else {
    process.stderr.write('starting an embedded PostgreSQL (set DATABASE_URL to use yours)\n');
    const server = await startEmbedded();
    url = server.adminUrl;
    stop = () => server.stop();
  }
  try {
    const tables: string[] = [];
    let missed = false;
    for (const name of scenarios) {
      const report = await runScenario({
        url,
        family,
        plan: plan!,
        steps: SCENARIOS[name],
        seedRows: Number(args.rows),
        clients: Number(args.clients),
        hotRows: Number(args.hot),
        windowMs: duration('--window', args.window!),
        // The demo ships a release every window of a few seconds instead of every few days, so the old-code gate's
        // quiet period shrinks with it: stop-write and contract go on once old code was not seen for half a window.
        guards: { oldCodeQuietMs: duration('--window', args.window!) / 2 },
        thinkMs: duration('--think', args.think!),
        ...slowRequest(args.slow!),
        log,
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      const text = formatReport(name, report);
      process.stdout.write(`\n${text}\n`);
      tables.push(text);
      missed ||= report.violations.length > 0;
    }
    if (args.out) await writeFile(args.out, tables.join('\n\n') + '\n');
    return missed ? 1 : 0;
  } finally {
    await stop();
  }
}

/** `--slow`: a duration the slow request holds its transaction (3s), or a multiple of the plan's lock_timeout (1.5). */
function slowRequest(text: string): { slowHoldMs: number } | { slowRequest: number } {
  return /^\d+(\.\d+)?$/.test(text) ? { slowRequest: Number(text) } : { slowHoldMs: duration('--slow', text) };
}

function duration(flag: string, text: string): number {
  const ms = toMilliseconds(text);
  if (ms === null) throw new Error(`${flag} ${text}: not a duration (e.g. 3s, 500ms)`);
  return ms;
}

/** A database of the user's: refuse to drop an existing `users` table unless told to. */
async function refuseToClobber(url: string, reset: boolean): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ exists: boolean }>(`SELECT to_regclass('users') IS NOT NULL AS exists`);
    if (rows[0]?.exists && !reset) {
      throw new Error('DATABASE_URL has a table "users": the demo drops and recreates it, so pass --reset if that is fine');
    }
  } finally {
    await client.end();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
