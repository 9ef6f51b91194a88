import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { apply, OldCodeError, rollback, verify, type Guards, type Phase, type Plan } from '../../src/index.js';
import { ident } from '../../src/db/ident.js';
import { DEFAULT_STATE_SCHEMA } from '../../src/defaults.js';
import type { Logger } from '../../src/log.js';
import { createUsers, SEED_COLUMNS } from '../app/schema.js';
import type { AppFamily, Version } from '../app/types.js';
import { checkWrites, type CheckResult } from './checker.js';
import { LockWaitSampler, type LockWait } from './lock-waits.js';
import { APP_NAME, quantile, Workload, type ClientError } from './workload.js';

/**
 * The bar allows a client to wait this much longer than the plan's
 * lock_timeout: pgshift waits outside the lock queue and attempts with one
 * lock_timeout at a time, so no client should queue behind it longer than
 * that, give or take scheduling (150 ms in all with the default 50 ms).
 */
export const LOCK_WAIT_SLACK_MS = 100;

/** One release step: a phase applied or rolled back, or a deploy of the app's releases. */
export type Step = { readonly do: 'apply' | 'rollback'; readonly phase: Phase } | { readonly do: 'deploy'; readonly versions: readonly Version[] };

const up = (phase: Phase): Step => ({ do: 'apply', phase });
const down = (phase: Phase): Step => ({ do: 'rollback', phase });
const deploy = (...versions: Version[]): Step => ({ do: 'deploy', versions });

/** How many times a gated phase is tried again while the old-code gate refuses, a quiet period apart. */
const GATE_TRIES = 20;

/** Up to switch-read and through it as releases go: v1 alone, then v2 beside it, then v1 retired. */
const TO_STOP_WRITE: readonly Step[] = [
  up('expand'),
  up('dual-write'),
  up('backfill'),
  up('switch-read'),
  deploy('v1', 'v2'),
  deploy('v2'),
  up('stop-write'),
  deploy('v3'),
];

/**
 * The scenarios, as a team would ship them. Each step is followed by a window
 * of traffic. Going back, the releases go back first: v3 before stop-write is
 * undone, and v2 before switch-read is (below it only v1 may run).
 */
export const SCENARIOS = {
  forward: [...TO_STOP_WRITE, up('contract')],
  rollback: [
    ...TO_STOP_WRITE,
    deploy('v2'),
    down('stop-write'),
    deploy('v1', 'v2'),
    deploy('v1'),
    down('switch-read'),
    down('backfill'),
    down('dual-write'),
    down('expand'),
  ],
} as const satisfies Record<string, readonly Step[]>;

export type ScenarioName = keyof typeof SCENARIOS;

export interface ScenarioOptions {
  readonly url: string;
  readonly family: AppFamily;
  readonly plan: Plan;
  readonly steps: readonly Step[];
  /** Rows in `users` before the run (it is recreated). */
  readonly seedRows: number;
  readonly clients: number;
  /** Seed rows every client updates, old and new releases alike (0 = none). */
  readonly hotRows: number;
  /** Traffic after each step, and before the first. */
  readonly windowMs: number;
  readonly thinkMs: number;
  /**
   * Before every phase, start a slow request that holds a transaction open
   * this many times the lock_timeout (0 = none): the phase's DDL then times
   * out, retries, and the clients queued behind it show what they wait.
   */
  readonly slowRequest?: number | undefined;
  /** How long the slow request holds its transaction, in ms (instead of `slowRequest` × lock_timeout). */
  readonly slowHoldMs?: number | undefined;
  /** Guard overrides for every phase (as the CLI's flags would). */
  readonly guards?: Partial<Guards> | undefined;
  readonly log?: Logger | undefined;
  /** Told of each step as it starts and ends, for a live view. */
  readonly onProgress?: ((line: string) => void) | undefined;
}

/** One window of the run: a phase applied or rolled back and the traffic until the next one. */
export interface WindowReport {
  readonly window: string;
  /** Releases that served traffic in this window, in order. */
  readonly releases: string[];
  /** How long pgshift took to apply or roll back the phase; null for the window before the first phase. */
  applyMs: number | null;
  transactions: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  lockWait: LockWait | null;
  /** Rows whose last write was in this window and that are lost or wrong. */
  failedRows: number;
  /**
   * Rows whose old and new sides disagreed (pgshift's verify) at the end of
   * the window, traffic running; null where the sides are not kept in sync.
   */
  differing: number | null;
}

export interface ScenarioReport {
  readonly server: string;
  readonly plan: string;
  readonly seedRows: number;
  readonly clients: number;
  readonly windows: readonly WindowReport[];
  readonly errors: readonly ClientError[];
  /** A phase that failed to apply or roll back (the run stops there). */
  readonly stepFailure: string | null;
  readonly check: CheckResult;
  readonly writes: number;
  readonly lockTimeoutMs: number;
  /** How long the slow request before each phase held its transaction (0 = none). */
  readonly slowHoldMs: number;
  /** Every way the run missed the bar; empty = 0 errors, 0 lost or wrong writes, no wait over lock_timeout + slack. */
  readonly violations: readonly string[];
}

const BEFORE = 'before';

/**
 * Run one scenario: recreate and seed `users`, start the clients on v1, then
 * take each step with traffic running, stop the clients and check every
 * acknowledged write against the final schema.
 */
export async function runScenario(options: ScenarioOptions): Promise<ScenarioReport> {
  const { url, plan, family, log } = options;
  const say = options.onProgress ?? (() => undefined);
  const admin = new pg.Client({ connectionString: url, application_name: 'pgshift-example-harness' });
  admin.on('error', () => undefined);
  await admin.connect();
  try {
    const server = (await admin.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v;
    await forgetPlan(admin, plan.name);
    say(`seeding ${options.seedRows} users`);
    await createUsers(admin, options.seedRows);

    const lockTimeoutMs = options.guards?.lockTimeoutMs ?? plan.guards.lockTimeoutMs;
    const slowHoldMs = options.slowHoldMs ?? Math.round((options.slowRequest ?? 0) * lockTimeoutMs);
    const workload = new Workload({
      url,
      family,
      clients: options.clients,
      seedRows: options.seedRows,
      hotRows: options.hotRows,
      thinkMs: options.thinkMs,
    });
    const sampler = new LockWaitSampler(url, APP_NAME);
    const windows: WindowReport[] = [];
    const open = (window: string): WindowReport => {
      const w: WindowReport = {
        window,
        releases: [workload.deployed.join('+')],
        applyMs: null,
        transactions: 0,
        errors: 0,
        p50Ms: 0,
        p99Ms: 0,
        maxMs: 0,
        lockWait: null,
        failedRows: 0,
        differing: null,
      };
      windows.push(w);
      workload.window = sampler.window = window;
      return w;
    };
    await sampler.start();
    await workload.start(['v1']);
    open(BEFORE);
    let stepFailure: string | null = null;
    // Both sides are kept in sync from a finished backfill until dual-write is rolled back or contract drops the old side.
    let synced = false;
    const runOptions = { databaseUrl: url, guards: options.guards, log };
    try {
      await sleep(options.windowMs);
      for (const step of options.steps) {
        if (step.do === 'deploy') {
          workload.deploy(step.versions);
          windows.at(-1)!.releases.push(step.versions.join('+'));
          say(`  deployed ${step.versions.join(' + ')}`);
        } else {
          const label = step.do === 'apply' ? step.phase : `rollback ${step.phase}`;
          const window = open(label);
          say(`${label} …`);
          if (slowHoldMs > 0) await workload.slowRequest(slowHoldMs);
          const started = performance.now();
          let outcome = step.do === 'apply' ? (await apply([plan], step.phase, runOptions))[0]! : await rollback(plan, step.phase, runOptions);
          // The old-code gate refuses while it saw old-code writes since its last look, and each such refusal starts
          // it watching afresh: as a release pipeline would, try again until it has watched a quiet period in peace.
          const quietMs = options.guards?.oldCodeQuietMs ?? plan.guards.oldCodeQuietMs;
          for (let tries = 0; step.do === 'apply' && outcome.error instanceof OldCodeError && tries < GATE_TRIES; tries++) {
            await sleep(quietMs);
            outcome = (await apply([plan], step.phase, runOptions))[0]!;
          }
          window.applyMs = performance.now() - started;
          if (outcome.error) {
            stepFailure = `${label} failed: ${outcome.error.message}`;
            say(`  ${stepFailure}`);
            break;
          }
          say(`  done in ${Math.round(window.applyMs)} ms`);
          if (step.do === 'apply' && step.phase === 'backfill') synced = true;
          if ((step.do === 'rollback' && step.phase === 'dual-write') || (step.do === 'apply' && step.phase === 'contract')) synced = false;
        }
        await sleep(options.windowMs);
        if (synced) {
          // After a deploy the phase's window is checked again; it keeps the worst count.
          const current = windows.at(-1)!;
          current.differing = Math.max(current.differing ?? 0, (await verify(plan, runOptions)).differing);
        }
      }
    } finally {
      await workload.stop();
      await sampler.stop();
    }

    say('checking every acknowledged write');
    let check: CheckResult = { rows: 0, sharedRows: 0, sides: [], failed: 0, failedByWindow: {}, findings: [] };
    let checkFailure: string | null = null;
    try {
      check = await checkWrites(admin, plan, workload.writes, { rows: options.seedRows, columns: SEED_COLUMNS });
    } catch (error) {
      // A plan that failed its very first phase has no state to check against; the step failure says why.
      checkFailure = `the checker could not run: ${(error as Error).message}`;
    }
    for (const w of windows) {
      const stats = workload.stats.get(w.window);
      const latencies = stats?.latenciesMs ?? [];
      w.transactions = stats?.transactions ?? 0;
      w.errors = workload.errors.filter((e) => e.window === w.window).length;
      w.p50Ms = quantile(latencies, 0.5);
      w.p99Ms = quantile(latencies, 0.99);
      w.maxMs = quantile(latencies, 1);
      w.lockWait = sampler.longest.get(w.window) ?? null;
      w.failedRows = check.failedByWindow[w.window] ?? 0;
    }
    const violations: string[] = [];
    if (stepFailure) violations.push(stepFailure);
    if (checkFailure) violations.push(checkFailure);
    if (workload.errors.length) violations.push(`${workload.errors.length} client errors`);
    if (check.failed) violations.push(`${check.failed} lost or wrong rows`);
    const differing = windows.filter((w) => w.differing);
    if (differing.length)
      violations.push(`old and new sides disagreed under traffic: ${differing.map((w) => `${w.differing} rows after ${w.window}`).join(', ')}`);
    const worst = sampler.max;
    if (worst && worst.ms > lockTimeoutMs + LOCK_WAIT_SLACK_MS) {
      violations.push(
        `a client waited ${Math.round(worst.ms)} ms for ${worst.lock} in ${worst.window} (behind ${worst.blockedBy ?? 'unknown'}), over lock_timeout ${lockTimeoutMs} ms + ${LOCK_WAIT_SLACK_MS} ms`,
      );
    }
    return {
      server,
      plan: plan.name,
      seedRows: options.seedRows,
      clients: options.clients,
      windows,
      errors: workload.errors,
      stepFailure,
      check,
      writes: workload.writes.length,
      lockTimeoutMs,
      slowHoldMs,
      violations,
    };
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/**
 * Forget an earlier run of the plan, so the scenario starts from nothing:
 * its state rows go (events and checkpoint cascade); the table is recreated next.
 */
async function forgetPlan(client: pg.Client, plan: string, schema = DEFAULT_STATE_SCHEMA): Promise<void> {
  const { rows } = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [`${ident(schema)}.plans`]);
  if (rows[0]?.ok) await client.query(`DELETE FROM ${ident(schema)}.plans WHERE name = $1`, [plan]);
}
