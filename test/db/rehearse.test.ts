import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { Rehearsal, RehearsalStep } from '../../src/index.js';
import { renderRehearsal } from '../../src/cli/render-rehearsal.js';
import { runCli, startCli, type CliResult } from '../helpers/cli.js';
import { planDir, RENAME_YAML } from '../helpers/fixtures.js';

/**
 * `migrate plan rehearse` with the example app's tiny suites (examples/rehearse/),
 * on the test server given as --database-url: the scratch database is made
 * and dropped there, so every test ends by checking none is left.
 */

const SETUP = 'node examples/rehearse/setup.mjs';
const OLD = 'node examples/rehearse/old.mjs';
const NEW_SPLIT = 'node examples/rehearse/new-split.mjs';
const NEW_RETYPE = 'node examples/rehearse/new-retype.mjs';
const NEW_REPORT = 'node examples/rehearse/new-split-report.mjs';

const adminUrl = inject('adminUrl');

async function scratchDatabases(): Promise<string[]> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return (await client.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'pgshift\\_rehearse\\_%'`)).rows.map((r) => r.datname);
  } finally {
    await client.end();
  }
}

afterEach(async () => {
  expect(await scratchDatabases()).toEqual([]);
});

function rehearseArgs(plan: string, extra: readonly string[], old = OLD): string[] {
  return ['plan', 'rehearse', plan, '--database-url', adminUrl, '--setup', SETUP, '--old', old, '--rows', '200', '--json', ...extra];
}

function report(r: CliResult): Rehearsal {
  const doc = r.lines.find((l) => 'steps' in l);
  if (!doc) throw new Error(`no rehearsal document:\n${r.stdout}\n${r.stderr}`);
  return doc as unknown as Rehearsal;
}

/** The matrix as `direction at: old/new/verify` lines, the quiet re-applies left out. */
function matrix(r: Rehearsal): string[] {
  return r.steps
    .filter((s) => !s.quiet)
    .map((s: RehearsalStep) => `${s.direction} ${s.at ?? 'none'}: ${s.migrate.outcome} ${s.old.outcome}/${s.new.outcome}/${s.verify.outcome}`);
}

describe('migrate plan rehearse', () => {
  it('passes everywhere for a sound old/new pair, forward, back and forward through contract', async () => {
    const r = await runCli(rehearseArgs('split-users-full-name', ['--new', NEW_SPLIT]));
    const result = report(r);
    expect(matrix(result), r.stderr).toEqual([
      'forward expand: pass pass/n.a./n.a.',
      'forward dual-write: pass pass/n.a./n.a.',
      'forward backfill: pass pass/n.a./pass',
      'forward switch-read: pass pass/pass/pass',
      'forward stop-write: pass n.a./pass/pass',
      'back switch-read: pass pass/pass/pass',
      'back backfill: pass pass/n.a./pass',
      'back dual-write: pass pass/n.a./pass',
      'back expand: pass pass/n.a./n.a.',
      'back none: pass pass/n.a./n.a.',
      'forward contract: pass n.a./pass/n.a.',
    ]);
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(true);
    expect(r.code).toBe(0);
    // Every command that ran has its duration.
    for (const s of result.steps) for (const c of [s.old, s.new]) if (c.outcome !== 'n.a.') expect(c.durationMs).toBeGreaterThan(0);
  });

  it('fails exactly at switch-read, naming the old command, when a plan makes a column NOT NULL while old code inserts without it', async () => {
    const r = await runCli(rehearseArgs('retype-users-user-name-not-null', ['--dir', 'examples/rehearse/plans', '--new', NEW_RETYPE]));
    const result = report(r);
    expect(r.code).toBe(1);
    expect(result.ok).toBe(false);
    const failed = result.steps.flatMap((s) =>
      (['old', 'new', 'verify'] as const).filter((side) => s[side].outcome === 'fail').map((side) => `${s.direction} ${s.at}: ${side}`),
    );
    expect(failed).toEqual(['forward switch-read: old', 'back switch-read: old']);
    expect(result.failures).toHaveLength(2);
    for (const f of result.failures) expect(f).toContain(`old \`${OLD}\` exited 1`);
    const cell = result.steps.find((s) => s.direction === 'forward' && s.at === 'switch-read')!.old;
    expect(cell.tail!.join('\n')).toMatch(/null value in column "login".*violates not-null constraint/);
    // What people read on a TTY: the matrix row, the failure naming the command, its last lines.
    const text = renderRehearsal(result);
    expect(text).toMatch(/forward\s+apply switch-read\s+switch-read\s+pass [\d.]+s\s+fail [\d.]+s\s+pass [\d.]+s\s+pass/);
    expect(text).toContain(`FAIL forward apply switch-read (at switch-read): old \`${OLD}\` exited 1`);
    expect(text).toMatch(/\| old app \(v1\): FAILED at phase switch-read/);
  });

  it('fails at the phase where a new release shipped too early reads a new column that is not backfilled yet', async () => {
    const r = await runCli(rehearseArgs('split-users-full-name', ['--new', NEW_REPORT, '--new-from', 'dual-write']));
    const result = report(r);
    expect(r.code).toBe(1);
    const failed = result.steps.flatMap((s) =>
      (['old', 'new', 'verify'] as const).filter((side) => s[side].outcome === 'fail').map((side) => `${s.direction} ${s.at}: ${side}`),
    );
    // At dual-write going forward the 200 rows have no first_name yet; going back, the backfill's values stay.
    expect(failed).toEqual(['forward dual-write: new']);
    const cell = result.steps.find((s) => s.direction === 'forward' && s.at === 'dual-write')!.new;
    expect(cell.tail!.join('\n')).toMatch(/every user has a first_name: got 200/);
    expect(result.steps.find((s) => s.direction === 'forward' && s.at === 'backfill')!.new.outcome).toBe('pass');
  });

  it('drops the scratch database when interrupted with SIGINT mid-run, and exits 1', async () => {
    const markerDir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-test-marker-'));
    const marker = path.join(markerDir, 'old-started');
    // The old suite leaves a mark, then hangs as a slow test suite would.
    const { child, done } = startCli(rehearseArgs('split-users-full-name', ['--new', NEW_SPLIT], `touch ${marker} && sleep 60`));
    for (let i = 0; i < 600 && !existsSync(marker); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(marker)).toBe(true);
    // Mid-run: expand is applied and its database exists.
    expect(await scratchDatabases()).toHaveLength(1);
    child.kill('SIGINT');
    const r = await done;
    expect(r.code).toBe(1);
    expect(r.errors).toMatch(/rehearsal interrupted \(SIGINT\); the scratch database was dropped/);
    await rm(markerDir, { recursive: true, force: true });
  });

  it('runs on an embedded PostgreSQL when no --database-url is given, and removes it', async () => {
    const leftovers = async (): Promise<string[]> => (await readdir(os.tmpdir())).filter((f) => f.startsWith('pgshift-rehearse-'));
    const before = await leftovers();
    const r = await runCli(['plan', 'rehearse', 'split-users-full-name', '--setup', SETUP, '--old', OLD, '--new', NEW_SPLIT, '--rows', '20', '--json']);
    const result = report(r);
    expect(result.server).toBe('embedded');
    expect(result.failures).toEqual([]);
    expect(r.code).toBe(0);
    expect(await leftovers()).toEqual(before);
  });

  it('moves several plans together, phase by phase, and verifies each', async () => {
    const split = await readFile('plans/split-users-full-name.yaml', 'utf8');
    const dir = await planDir({ 'a-rename-accounts.yaml': `table: accounts\nrename: { column: nick, to: handle }\n`, 'b-split.yaml': split });
    const r = await runCli([
      ...rehearseArgs('split-users-full-name', ['--new', NEW_SPLIT, '--dir', dir, 'a-rename-accounts']),
      '--setup',
      `${SETUP} && node examples/rehearse/setup-accounts.mjs`,
    ]);
    const result = report(r);
    expect(result.plans).toEqual(['a-rename-accounts', 'split-users-full-name']);
    expect(result.failures).toEqual([]);
    expect(r.code).toBe(0);
    const backfill = result.steps.find((s) => s.direction === 'forward' && s.at === 'backfill')!;
    expect(backfill.verify.differing).toEqual({ 'a-rename-accounts': 0, 'split-users-full-name': 0 });
    expect(result.steps.filter((s) => !s.quiet)).toHaveLength(11);
  });

  it('refuses bad input with exit 2 and leaves no scratch database', async () => {
    /** `plan rehearse PLANS --dir DIR` on the test server, with the trivial old and new code of these cases. */
    const rehearse = (plans: string[], dir: string, ...more: string[]): ReturnType<typeof runCli> =>
      runCli(['plan', 'rehearse', ...plans, '--dir', dir, '--database-url', adminUrl, '--old', 'true', '--new', 'true', ...more]);
    const dir = await planDir({ 'a.yaml': RENAME_YAML, 'b.yaml': RENAME_YAML.replace('plan: rename-users-user-name', 'plan: other-rename') });
    const same = await rehearse(['rename-users-user-name', 'other-rename'], dir);
    expect(same.code).toBe(2);
    expect(same.errors).toMatch(/change the same table; a deploy runs one at a time/);
    // The same table named two ways is found once the schema exists.
    const twoWays = await planDir({
      'a.yaml': RENAME_YAML,
      'b.yaml': RENAME_YAML.replace('plan: rename-users-user-name', 'plan: other-rename').replace('public.users', 'users'),
    });
    const unqualified = await rehearse(['rename-users-user-name', 'other-rename'], twoWays, '--setup', SETUP);
    expect(unqualified.code).toBe(2);
    expect(unqualified.errors).toMatch(/plans "rename-users-user-name" and "other-rename" change the same table/);
    const rows = await rehearse(['rename-users-user-name'], dir, '--rows', 'many');
    expect(rows.code).toBe(2);
    const noNew = await runCli(['plan', 'rehearse', 'rename-users-user-name', '--dir', dir, '--database-url', adminUrl, '--old', 'true']);
    expect(noNew.code).toBe(2);
    // The plan does not fit the schema --setup built (no users table): exit 2, and the scratch database is gone.
    const noTable = await rehearse(['rename-users-user-name'], dir);
    expect(noTable.code).toBe(2);
    expect(noTable.errors).toMatch(/table "public\.users" does not exist/);
  });
});
