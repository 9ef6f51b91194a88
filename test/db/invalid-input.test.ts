import { beforeAll, describe, expect, it } from 'vitest';
import { describeDatabase } from '../helpers/catalog.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, RENAME_YAML, seedUsers, SPLIT_YAML, USERS_TABLE } from '../helpers/fixtures.js';

/** Every invalid input exits 2 with a message naming what is wrong, and leaves the database exactly as it was. */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(50));
  await db.sql(`CREATE TABLE nokey (a int, b text)`);
  await db.sql(`CREATE TABLE x (id int)`);
});

const split = (patch: (yaml: string) => string): string => patch(SPLIT_YAML);

const CASES: { name: string; files: Record<string, string>; args?: string[]; says: RegExp }[] = [
  { name: 'YAML that does not parse', files: { 'p.yaml': 'table: users\nrename: { column: a\n' }, says: /p\.yaml:\d+/ },
  { name: 'an unknown key', files: { 'p.yaml': RENAME_YAML + 'colour: blue\n' }, says: /p\.yaml:\d+ colour: unknown key/ },
  { name: 'a missing table', files: { 'p.yaml': RENAME_YAML.replace('public.users', 'public.nobody') }, says: /table "public\.nobody" does not exist/ },
  { name: 'a missing column', files: { 'p.yaml': RENAME_YAML.replace('column: user_name', 'column: nick') }, says: /column "nick" does not exist/ },
  {
    name: 'a target column that exists',
    files: { 'p.yaml': RENAME_YAML.replace('to: username', 'to: email') },
    says: /rename\.to: column "email" already exists/,
  },
  {
    name: 'a type that does not exist',
    files: { 'p.yaml': split((y) => y.replace('type: text', 'type: textt')) },
    says: /split\.into\[0\]\.type: type "textt" does not exist/,
  },
  {
    name: 'a type with a statement smuggled in',
    files: { 'p.yaml': split((y) => y.replace('type: text', 'type: "text); DROP TABLE x; --"')) },
    says: /split\.into\[0\]\.type: type .* does not exist/,
  },
  {
    name: 'an expression over an unknown column',
    files: { 'p.yaml': split((y) => y.replace("split_part(full_name, ' ', 1)", "split_part(nickname, ' ', 1)")) },
    says: /split\.into\[0\]\.using: does not compile: column "nickname" does not exist/,
  },
  {
    name: 'an expression with a second statement',
    files: { 'p.yaml': split((y) => y.replace("split_part(full_name, ' ', 1)", `"'a'); DROP TABLE x; SELECT ('b'"`)) },
    says: /split\.into\[0\]\.using: does not compile/,
  },
  {
    name: 'an expression of the wrong type',
    files: { 'p.yaml': split((y) => y.replace("concat_ws(' ', first_name, last_name)", 'first_name > 3')) },
    says: /split\.reverse: does not compile/,
  },
  { name: 'a table without a primary key and no key', files: { 'p.yaml': 'table: nokey\nrename: { column: b, to: c }\n' }, says: /has no primary key/ },
  {
    name: 'a key that is not unique',
    files: { 'p.yaml': 'table: users\nkey: [email]\nrename: { column: user_name, to: username }\n' },
    says: /key column\(s\) "email" must be NOT NULL|not covered by a unique index/,
  },
  {
    name: 'a key column the plan changes',
    files: { 'p.yaml': 'table: users\nkey: [id]\nrename: { column: id, to: ident }\n' },
    says: /key column "id" is changed by the plan/,
  },
  {
    name: 'merge without a reverse for every column',
    files: {
      'p.yaml': `table: users\nmerge: { columns: [user_name, email], into: { name: contact, type: text, using: "concat_ws(' ', user_name, email)" }, reverse: { user_name: contact } }\n`,
    },
    says: /merge\.reverse: must give one expression for each/,
  },
  { name: 'an unknown phase', files: { 'p.yaml': RENAME_YAML }, args: ['--phase', 'sideways'], says: /must be next or one of expand/ },
  {
    name: 'a lock timeout that is not a duration',
    files: { 'p.yaml': RENAME_YAML },
    args: ['--lock-timeout', 'soon'],
    says: /--lock-timeout needs a duration/,
  },
  { name: 'a plan name that no file has', files: { 'p.yaml': RENAME_YAML }, args: ['no-such-plan'], says: /no plan named "no-such-plan"/ },
  { name: 'two files with one plan name', files: { 'a.yaml': RENAME_YAML, 'b.yaml': RENAME_YAML }, says: /plan name "rename-users-user-name" is also used by/ },
];

describe('invalid input', () => {
  it.each(CASES)('refuses $name with exit 2 and changes nothing', async ({ files, args = [], says }) => {
    const before = await describeDatabase(db);
    const dir = await planDir(files);
    const result = await runCli(['plan', 'apply', ...args, '--dir', dir, '--database-url', db.url]);
    expect(result.errors).toMatch(says);
    expect(result.code).toBe(2);
    expect(await describeDatabase(db)).toEqual(before);
    expect(await db.sql(`SELECT to_regnamespace('pgshift') AS s`)).toEqual([{ s: null }]);
  });

  it('reports every problem of every file at once', async () => {
    const dir = await planDir({
      'a.yaml': RENAME_YAML + 'colour: blue\n',
      'b.yaml': SPLIT_YAML.replace('batch_size: 500', 'batch_size: -1'),
    });
    const result = await runCli(['plan', 'lint', '--dir', dir, '--database-url', db.url]);
    expect(result.code).toBe(2);
    expect(result.errors).toMatch(/a\.yaml:\d+ colour/);
    expect(result.errors).toMatch(/b\.yaml:\d+ backfill\.batch_size/);
  });

  it('treats a hostile column name as just a name', async () => {
    const dir = await planDir({ 'p.yaml': 'plan: hostile\ntable: users\nrename: { column: email, to: "r; DROP TABLE x" }\n' });
    const result = await runCli(['plan', 'apply', '--phase', 'expand', '--dir', dir, '--database-url', db.url]);
    expect(result.code).toBe(0);
    expect(await db.sql(`SELECT count(*)::int AS n FROM x`)).toEqual([{ n: 0 }]);
    expect(await db.sql(`SELECT attname FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname LIKE 'r;%'`)).toEqual([
      { attname: 'r; DROP TABLE x' },
    ]);
    expect((await runCli(['plan', 'rollback', 'hostile', '--dir', dir, '--database-url', db.url])).code).toBe(0);
  });
});

describe('plans in flight', () => {
  it('refuses an edited in-flight plan unless --force; a second plan on its column waits behind it, changing nothing', async () => {
    await db.sql(`CREATE TABLE flight (id int PRIMARY KEY, a text, b text)`);
    const original = 'plan: flight-a\ntable: flight\nrename: { column: a, to: a2 }\nguards: { lock_timeout: 1s }\n';
    const dir = await planDir({ 'flight-a.yaml': original });
    const url = ['--dir', dir, '--database-url', db.url];
    expect((await runCli(['plan', 'apply', ...url])).code).toBe(0);

    const edited = await planDir({ 'flight-a.yaml': original.replace('to: a2', 'to: a3') });
    const before = await describeDatabase(db);
    const refused = await runCli(['plan', 'apply', '--dir', edited, '--database-url', db.url]);
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/plan "flight-a" changed after it started.*--force/s);
    expect(await describeDatabase(db)).toEqual(before);
    // Tuning guards is not an edit of the migration.
    const tuned = await planDir({ 'flight-a.yaml': original.replace('lock_timeout: 1s', 'lock_timeout: 3s') });
    expect((await runCli(['plan', 'status', 'flight-a', '--dir', tuned, '--database-url', db.url])).code).toBe(0);

    const second = await planDir({ 'flight-a.yaml': original, 'flight-b.yaml': 'plan: flight-b\ntable: flight\nrename: { column: a, to: a9 }\n' });
    // A plan sharing a column with one in flight waits for its turn, which is not an error (see release-train.test.ts).
    const other = await runCli(['plan', 'apply', 'flight-b', '--no-json', '--dir', second, '--database-url', db.url]);
    expect(other.code).toBe(0);
    expect(other.stdout).toContain('flight-b: waiting behind flight-a (at expand)');
    expect(await describeDatabase(db)).toEqual(before);

    const forced = await runCli(['plan', 'rollback', 'flight-a', '--force', '--dir', edited, '--database-url', db.url]);
    expect(forced.code).toBe(0);
  });

  it('refuses to roll back contract once its archive is dropped (contract.keep: 0), saying the data is gone', async () => {
    await db.sql(`CREATE TABLE gone (id int PRIMARY KEY, a text)`);
    const dir = await planDir({ 'gone.yaml': 'plan: gone\ntable: gone\nrename: { column: a, to: b }\ncontract: { keep: 0 }\n' });
    const url = ['--dir', dir, '--database-url', db.url];
    expect((await runCli(['plan', 'apply', '--phase', 'contract', ...url])).code).toBe(0);
    const before = await describeDatabase(db);
    const refused = await runCli(['plan', 'rollback', 'gone', ...url]);
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/the old columns contract archived \(_pgshift_gone_a\) were dropped .*so contract cannot be rolled back/);
    expect(await describeDatabase(db)).toEqual(before);
  });
});
