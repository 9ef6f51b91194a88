#!/usr/bin/env node
// Commit messages people can scan (CONTRIBUTING.md, "Commit messages"): a
// subject of at most 72 characters, then a blank line before any body.
//
//   node scripts/check-commits.mjs                 every commit after the base (npm run lint)
//   node scripts/check-commits.mjs --file MSGFILE  one message (the commit-msg hook)
//
// The base is PGSHIFT_COMMITS_BASE if set, else BASELINE: the last commit
// before the rule, whose history keeps its long subjects. Checking from a
// fixed commit works the same on a branch and on a fresh clone of main.
// Merge commits are left out (git writes their subjects); so is everything
// when there is no git history (a tarball).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const BASELINE = 'eb909dc1b8aaa90bd34e26578b727c5d64c3825c';
const MAX_SUBJECT = 72;

/** What is wrong with one message, as sentences; none when it is fine. */
function problems(message) {
  const lines = message
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n')
    .trim()
    .split('\n');
  const subject = lines[0] ?? '';
  const found = [];
  if (subject.trim() === '') found.push('empty subject');
  if (subject.length > MAX_SUBJECT) found.push(`subject is ${subject.length} characters (at most ${MAX_SUBJECT}; put the rest in the body)`);
  if (lines.length > 1 && lines[1].trim() !== '') found.push('no blank line between the subject and the body');
  return found;
}

function git(...args) {
  return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function commitsToCheck() {
  try {
    git('rev-parse', '--git-dir');
  } catch {
    console.log('check-commits: not a git checkout; nothing to check');
    return [];
  }
  const base = process.env.PGSHIFT_COMMITS_BASE || BASELINE;
  let range;
  try {
    git('rev-parse', '--verify', '--quiet', `${base}^{commit}`);
    range = [`${base}..HEAD`];
  } catch {
    // A shallow clone that stops after the base: what it has is all newer.
    if (git('rev-parse', '--is-shallow-repository').trim() !== 'true') throw new Error(`check-commits: base ${base} is not in this repository`);
    console.log(`check-commits: shallow clone without ${base.slice(0, 12)}; checking the commits it has`);
    range = ['HEAD'];
  }
  return git('log', '--no-merges', '--format=%H%x1f%B%x1e', ...range)
    .split('\x1e')
    .map((entry) => entry.replace(/^\n/, ''))
    .filter((entry) => entry !== '')
    .map((entry) => {
      const [hash, message] = entry.split('\x1f');
      return { name: hash.slice(0, 12), message };
    });
}

const fileFlag = process.argv.indexOf('--file');
const commits = fileFlag >= 0 ? [{ name: process.argv[fileFlag + 1], message: readFileSync(process.argv[fileFlag + 1], 'utf8') }] : commitsToCheck();
let failed = 0;
for (const { name, message } of commits) {
  const found = problems(message);
  if (found.length === 0) continue;
  failed++;
  const subject = message.split('\n')[0];
  console.error(`${name} "${subject.length > MAX_SUBJECT ? subject.slice(0, MAX_SUBJECT) + '…' : subject}": ${found.join('; ')}`);
}
if (failed) {
  console.error(`check-commits: ${failed} of ${commits.length} commit message(s) to fix (git rebase -i, reword)`);
  process.exitCode = 1;
} else if (fileFlag < 0) {
  console.log(`check-commits: ${commits.length} commit message(s) after the base, all fine`);
}
