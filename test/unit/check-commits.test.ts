import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** scripts/check-commits.mjs, the commit-message part of `npm run lint`, on a repository of its own. */
const SCRIPT = resolve('scripts/check-commits.mjs');
const LONG = 'Add a subject that runs on and on past the seventy-two characters a log line has';
let repo: string;

const env = (base?: string): NodeJS.ProcessEnv => ({
  ...process.env,
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.invalid',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.invalid',
  GIT_CONFIG_GLOBAL: '/dev/null',
  ...(base ? { PGSHIFT_COMMITS_BASE: base } : {}),
});

function git(...args: string[]): string {
  const r = spawnSync('git', args, { cwd: repo, env: env(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

function commit(message: string): string {
  git('commit', '--allow-empty', '--cleanup=verbatim', '-m', message);
  return git('rev-parse', 'HEAD');
}

function check(base: string, ...args: string[]): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { cwd: repo, env: env(base), encoding: 'utf8' });
  return { status: r.status, output: r.stdout + r.stderr };
}

beforeAll(() => {
  repo = mkdtempSync(join(tmpdir(), 'pgshift-commits-'));
  git('init', '--quiet');
});
afterAll(() => rmSync(repo, { recursive: true, force: true }));

describe('commit messages after the base', () => {
  it('fail on a subject over 72 characters, naming the commit; commits up to the base are not read', () => {
    commit(LONG);
    const base = commit('Record the baseline');
    expect(check(base).status).toBe(0);

    commit('Keep a short subject\n\nThe why, in the body.');
    const long = commit(LONG + '\n\nA body does not make up for it.');
    const r = check(base);
    expect(r.status).toBe(1);
    expect(r.output).toContain(`${long.slice(0, 12)} "${LONG.slice(0, 72)}…": subject is ${LONG.length} characters (at most 72`);
    expect(r.output).toContain('1 of 2 commit message(s) to fix');
  });

  it('pass with a subject of exactly 72 characters', () => {
    const base = git('rev-parse', 'HEAD');
    commit('x'.repeat(72) + '\n\nbody');
    expect(check(base)).toMatchObject({ status: 0, output: expect.stringContaining('1 commit message(s) after the base, all fine') });
  });

  it('in a shallow clone that stops after the base, check the commits it has', () => {
    const base = git('rev-parse', 'HEAD~1');
    const shallow = join(repo, 'shallow');
    git('clone', '--quiet', '--depth', '1', `file://${repo}`, shallow);
    const r = spawnSync(process.execPath, [SCRIPT], { cwd: shallow, env: env(base), encoding: 'utf8' });
    expect(r.stdout).toContain('shallow clone without');
    expect(r).toMatchObject({ status: 0, stdout: expect.stringContaining('1 commit message(s) after the base, all fine') });
  });

  it('in the commit-msg hook, fail on a body not set off by a blank line; git comments are not the message', () => {
    const file = join(repo, 'MSG');
    writeFileSync(file, 'Short subject\nbody right under it\n');
    expect(check('', '--file', file)).toMatchObject({ status: 1, output: expect.stringContaining('no blank line between the subject and the body') });
    writeFileSync(file, `# ${LONG}\nShort subject\n\nbody\n# Please enter the commit message\n`);
    expect(check('', '--file', file).status).toBe(0);
  });
});
