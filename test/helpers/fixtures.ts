import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parsePlan } from '../../src/plan/load.js';
import type { Plan } from '../../src/plan/types.js';
import { USERS_DDL } from '../../examples/app/schema.js';

/** The users table the example plans change: the example application's own. */
export const USERS_TABLE = USERS_DDL;

/** Insert `n` users with names "First<i> Last<i>". */
export function seedUsers(n: number): string {
  return `INSERT INTO users (full_name, user_name, email)
          SELECT 'First' || g || ' Last' || g, 'user' || g, 'u' || g || '@example.com' FROM generate_series(1, ${n}) g`;
}

/** The change of plans/split-users-full-name.yaml: full_name → first_name, last_name. */
export const SPLIT_CHANGE = `split:
  column: full_name
  into:
    - name: first_name
      type: text
      using: split_part(full_name, ' ', 1)
    - name: last_name
      type: text
      using: nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)
  reverse: concat_ws(' ', first_name, last_name)`;

/**
 * The split of plans/split-users-full-name.yaml (full_name → first_name,
 * last_name) as plan text for any table, with `backfill` and `guards` given
 * as YAML flow maps; `extra` adds top-level lines (e.g. `key: [...]`).
 */
export function splitPlanYaml(name: string, table: string, backfill: string, guards: string, extra = ''): string {
  return `
plan: ${name}
table: ${table}
${extra}
${SPLIT_CHANGE}
backfill: ${backfill}
guards: ${guards}
`;
}

/** The example split plan on public.users, with quick guards for tests. */
export const SPLIT_YAML = splitPlanYaml(
  'split-users-full-name',
  'public.users',
  '{ batch_size: 500, pause: 0ms }',
  '{ lock_timeout: 500ms, statement_timeout: 10s, retries: 1 }',
);

/** A rename plan with quick guards. */
export const RENAME_YAML = `
plan: rename-users-user-name
table: public.users
rename:
  column: user_name
  to: username
backfill:
  batch_size: 500
  pause: 0ms
guards:
  lock_timeout: 500ms
  statement_timeout: 10s
  retries: 1
`;

/** Parse plan text as if read from `<name>.yaml`. */
export function plan(yaml: string, file = 'test.yaml'): Plan {
  return parsePlan(yaml, file);
}

/** Write plan files into a fresh directory; returns its path. */
export async function planDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-plans-'));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}
