import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, RENAME_YAML, seedUsers, SPLIT_YAML, USERS_TABLE } from '../helpers/fixtures.js';

/**
 * `lint` tells everything in one run: the mistakes of files that do not load
 * and those the catalog finds in files that do, each with its file and line;
 * and it warns (exit 0) when `reverse` does not undo `using` on real rows.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  // PostgreSQL 14 still lets PUBLIC create in schema public (15+ does not), which lint warns about: make both alike.
  await db.sql(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(100));
});

const rename = (patch: (y: string) => string): string => patch(RENAME_YAML).replace(/^plan: .*$/m, '');

/** Ten plan files, ten different mistakes: five the loader finds, five only the catalog can. */
const FILES: Record<string, string> = {
  'a-yaml-syntax.yaml': 'table: users\nrename: { column: user_name\n',
  'b-unknown-key.yaml': rename((y) => y + 'colour: blue\n'),
  'c-bad-batch.yaml': SPLIT_YAML.replace(/^plan: .*$/m, '').replace('batch_size: 500', 'batch_size: -1'),
  'd-two-kinds.yaml': rename((y) => y + 'retype: { column: email, to: text, using: email, reverse: email }\n'),
  'e-placeholder.yaml': SPLIT_YAML.replace(/^plan: .*$/m, '').replace("concat_ws(' ', first_name, last_name)", '"TODO(pgshift): write this"'),
  'f-no-table.yaml': rename((y) => y.replace('public.users', 'public.nobody')),
  'g-no-column.yaml': rename((y) => y.replace('column: user_name', 'column: nick')),
  'h-name-taken.yaml': rename((y) => y.replace('to: username', 'to: email')),
  'i-no-type.yaml': SPLIT_YAML.replace(/^plan: .*$/m, '').replace('type: text', 'type: texxt'),
  'j-bad-expression.yaml': SPLIT_YAML.replace(/^plan: .*$/m, '').replace("split_part(full_name, ' ', 1)", 'split_part(nickname, 1)'),
};

/** file → [the text on the line the mistake is reported at (null: line 1), what the message says] */
const EXPECTED: [string, string | null, RegExp][] = [
  ['a-yaml-syntax.yaml', null, /a-yaml-syntax\.yaml:3: Flow map .* must .* end with a }/],
  ['b-unknown-key.yaml', 'colour: blue', /colour: unknown key/],
  ['c-bad-batch.yaml', 'batch_size: -1', /backfill\.batch_size/],
  ['d-two-kinds.yaml', null, /has rename and retype/],
  ['e-placeholder.yaml', 'TODO(pgshift)', /split\.reverse: is a placeholder/],
  ['f-no-table.yaml', 'public.nobody', /table: table "public\.nobody" does not exist/],
  ['g-no-column.yaml', 'rename:', /rename: column "nick" does not exist/],
  ['h-name-taken.yaml', 'to: email', /rename\.to: column "email" already exists/],
  ['i-no-type.yaml', 'type: texxt', /split\.into\[0\]\.type: type "texxt" does not exist/],
  ['j-bad-expression.yaml', 'split_part(nickname', /split\.into\[0\]\.using: does not compile/],
];

/** The 1-based line of the first line of `text` that contains `marker`. */
const lineOf = (text: string, marker: string | null): number => (marker === null ? 1 : text.split('\n').findIndex((l) => l.includes(marker)) + 1);

describe('lint', () => {
  it('names all ten mistakes of ten files in one run, each with its file and line', async () => {
    const dir = await planDir(FILES);
    const result = await runCli(['plan', 'lint', '--dir', dir, '--database-url', db.url, '--json']);
    expect(result.code).toBe(2);
    const lines = result.errors.split('\n');
    for (const [file, marker, says] of EXPECTED) {
      const found = lines.filter((l) => l.includes(`${file}:`));
      expect(found, file).toHaveLength(1);
      expect(found[0], file).toMatch(says);
      if (file !== 'a-yaml-syntax.yaml') expect(found[0], file).toMatch(new RegExp(`${file}:${lineOf(FILES[file]!, marker)}[ :]`));
    }
  });

  it('warns, and still exits 0, when reverse does not give back the old value on real rows', async () => {
    // A last_name that keeps only the second word loses the third.
    await db.sql(`UPDATE users SET full_name = 'Anna Lena Berg' WHERE id = 7`);
    const lossy = SPLIT_YAML.replace("nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)", "split_part(full_name, ' ', 2)");
    const dir = await planDir({ 'split-users-full-name.yaml': lossy });
    const result = await runCli(['plan', 'lint', '--dir', dir, '--database-url', db.url, '--json']);
    expect(result.errors).toBe('');
    expect(result.code).toBe(0);
    const warnings = result.lines.filter((l) => l.event === 'warning').map((l) => String(l.message));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /split\.reverse does not give back the old value from what using made of it in 1 of 100 sampled rows, e\.g\. key 7: Anna Lena Berg came back as Anna Lena/,
    );
  });

  it('has nothing to say of a rename, or of a split whose rows all come back', async () => {
    const dir = await planDir({ 'split-users-full-name.yaml': SPLIT_YAML, 'rename-users-user-name.yaml': RENAME_YAML });
    const result = await runCli(['plan', 'lint', '--dir', dir, '--database-url', db.url, '--json']);
    expect(result.errors).toBe('');
    expect(result.code).toBe(0);
    expect(result.lines.map((l) => [l.event, l.plan])).toEqual([
      ['lint', 'rename-users-user-name'],
      ['lint', 'split-users-full-name'],
    ]);
  });
});
