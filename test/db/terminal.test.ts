import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, splitPlanYaml, USERS_TABLE } from '../helpers/fixtures.js';

/**
 * On a terminal the CLI is for people: log lines are short human lines,
 * the backfill's progress bar stays below them, and no JSON is printed.
 * Off a terminal (a pipeline) the logs stay JSON lines.
 */

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/migrate.js', import.meta.url));
const PLAN = 'split-terminal';

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(3_000));
  dir = await planDir({ [`${PLAN}.yaml`]: splitPlanYaml(PLAN, 'public.users', '{ batch_size: 200, pause: 0ms, target_batch_ms: 0 }', '{ lock_timeout: 2s }') });
});

/** What a person sees: one entry per line or redraw (a move to column 1), with colours and other escapes removed. */
function screenLines(raw: string): string[] {
  return (
    raw
      // eslint-disable-next-line no-control-regex
      .replace(/\x1b\[\d*G/g, '\n')
      // eslint-disable-next-line no-control-regex
      .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
      .split(/\r\n|\r|\n/)
      .map((l) => l.trim())
      .filter(Boolean)
  );
}

function isJson(line: string): boolean {
  try {
    return typeof JSON.parse(line) === 'object';
  } catch {
    return false;
  }
}

describe('the CLI on a terminal', () => {
  it('prints human log lines above the progress bar, and no JSON', async () => {
    const quote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;
    const command = [process.execPath, BIN, 'plan', 'apply', PLAN, '--phase', 'backfill', '--dir', dir, '--database-url', db.url].map(quote).join(' ');
    // util-linux's script runs the command on a pseudo-terminal: stdout and stderr are a TTY, as in a person's shell.
    const { stdout } = await run('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, PGSHIFT_LOG_LEVEL: 'info', VITEST: '' } });
    const lines = screenLines(stdout);
    expect(lines.filter(isJson)).toEqual([]);
    expect(lines).toContainEqual(expect.stringMatching(/^\[\d\d:\d\d:\d\d\] INFO: split-terminal backfill: backfill of split-terminal up to key 3000/));
    // The bar, redrawn in place (the terminal's width may cut its end).
    expect(lines).toContainEqual(expect.stringMatching(/^split-terminal backfill \[█+\] 100% \| 3000\//));
    expect(lines.at(-1)).toBe('split-terminal: applied expand, dual-write, backfill; now at backfill');
  });

  it('keeps JSON log lines when stderr is not a terminal', async () => {
    const out = await runCli(['plan', 'rollback', PLAN, '--phase', 'expand', '--dir', dir, '--database-url', db.url], { PGSHIFT_LOG_LEVEL: 'info' });
    expect(out.code).toBe(0);
    const logLines = out.stderr.split('\n').filter(Boolean);
    expect(logLines.length).toBeGreaterThan(0);
    for (const line of logLines) expect(JSON.parse(line)).toMatchObject({ level: expect.any(Number), msg: expect.any(String) });
  });
});
