import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * The commands a CI job runs on a pull request (`detect`, then `lint` and
 * `show` of the plans it wrote), run as the built CLI against a real
 * database whose schema comes from the same migrations.
 */

const FIXTURES = fileURLToPath(new URL('../fixtures/migrations/', import.meta.url));

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  // The schema the Drizzle migrations start from.
  await db.sql(await readFile(path.join(FIXTURES, 'drizzle/0000_warm_lady_deathstrike.sql'), 'utf8'));
});

describe('detect in CI', () => {
  it('exits 1 on unsafe statements, naming file and line, and 0 on clean ones', async () => {
    const unsafe = await runCli(['plan', 'detect', path.join(FIXTURES, 'drizzle'), '--json']);
    expect(unsafe.code).toBe(1);
    const events = unsafe.lines.filter((l) => l.event === 'unsafe');
    expect(events.map((e) => [path.basename(String(e.file)), e.line, e.rule])).toEqual([
      ['0001_rename_username.sql', 1, 'rename-column'],
      ['0002_age_check.sql', 1, 'constraint-validated'],
      ['0003_email_unique.sql', 2, 'constraint-builds-index'],
    ]);
    expect(unsafe.lines.at(-1)).toMatchObject({ event: 'detect', files: 4, unsafe: 3 });

    const clean = await runCli([
      'plan',
      'detect',
      path.join(FIXTURES, 'sql/001_accounts_owner_not_null.sql'),
      path.join(FIXTURES, 'sql/002_accounts_slug_unique.sql'),
      '--no-json',
    ]);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/^0 unsafe statement\(s\) in 2 file\(s\)/);
  });

  it('writes plans that lint clean and show their SQL against the database', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-ci-'));
    const detected = await runCli(['plan', 'detect', path.join(FIXTURES, 'drizzle/0001_rename_username.sql'), '--write', '--dir', dir, '--no-json']);
    expect(detected.code).toBe(1);
    expect(detected.stdout).toMatch(/0001_rename_username\.sql:1: RENAME COLUMN user_name TO username/);
    expect(await readdir(dir)).toEqual(['rename-users-user-name.yaml']);

    const lint = await runCli(['plan', 'lint', '--dir', dir, '--database-url', db.url, '--json']);
    expect(lint.errors).toBe('');
    expect(lint.code).toBe(0);
    const show = await runCli(['plan', 'show', 'rename-users-user-name', '--dir', dir, '--database-url', db.url, '--no-json']);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/ADD COLUMN IF NOT EXISTS "username" text/);
    expect(show.stdout).toMatch(/ACCESS EXCLUSIVE/);
  });

  it('writes drop and retype plans from Prisma-style drops that lint clean against the database, and no rename to itself', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-ci-'));
    const migrations = path.join(dir, 'migrations');
    await mkdir(migrations);
    // The schema the Drizzle migrations start from, then a drop on its own and a drop-and-re-add of one name (a type change).
    await writeFile(path.join(migrations, '0000.sql'), await readFile(path.join(FIXTURES, 'drizzle/0000_warm_lady_deathstrike.sql'), 'utf8'));
    await writeFile(
      path.join(migrations, '0001.sql'),
      'ALTER TABLE "users" DROP COLUMN "user_name";\nALTER TABLE "users" DROP COLUMN "age",\nADD COLUMN "age" BIGINT;\n',
    );
    const plans = path.join(dir, 'plans');
    const detected = await runCli(['plan', 'detect', migrations, '--write', '--dir', plans, '--json']);
    expect(detected.code).toBe(1);
    expect(detected.lines.filter((l) => l.event === 'unsafe').map((e) => [e.line, e.rule, e.plan])).toEqual([
      [1, 'drop-column', 'drop-users-user-name'],
      [2, 'drop-add-retype', 'retype-users-age'],
    ]);
    expect((await readdir(plans)).sort()).toEqual(['drop-users-user-name.yaml', 'retype-users-age.yaml']);
    // The retype's way back is left to a person; written, it lints like the drop.
    const retype = path.join(plans, 'retype-users-age.yaml');
    await writeFile(retype, (await readFile(retype, 'utf8')).replace(/reverse: .*/, 'reverse: age::integer'));
    const lint = await runCli(['plan', 'lint', '--dir', plans, '--database-url', db.url, '--json']);
    expect(lint.errors).toBe('');
    expect(lint.code).toBe(0);
  });

  it('is what the pull-request action reports: scripts/pr-report.sh runs detect, lint and show', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-ci-'));
    expect((await runCli(['plan', 'detect', path.join(FIXTURES, 'drizzle'), '--write', '--dir', dir])).code).toBe(1);
    const report = path.join(dir, 'report.md');
    const run = spawnSync('bash', [fileURLToPath(new URL('../../scripts/pr-report.sh', import.meta.url))], {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        PGSHIFT_MIGRATIONS: path.join(FIXTURES, 'drizzle'),
        PGSHIFT_PLANS: dir,
        PGSHIFT_REPORT: report,
        PGSHIFT_BIN: `${process.execPath} ${fileURLToPath(new URL('../../bin/migrate.js', import.meta.url))}`,
        PGSHIFT_LOG_LEVEL: 'warn',
      },
      encoding: 'utf8',
    });
    expect(run.status).toBe(1);
    const text = await readFile(report, 'utf8');
    expect(text).toMatch(/### Unsafe statements in the migrations \(`migrate plan detect`, exit 1\)/);
    expect(text).toMatch(/0001_rename_username\.sql:1: RENAME COLUMN/);
    expect(text).toMatch(/### Plans checked against the database \(`migrate plan lint`, exit 0\)\n\n```\nrename-users-user-name: ok/);
    expect(text).toMatch(/### `rename-users-user-name`: what each phase runs and locks/);
    expect(text).toMatch(/-- phase contract: apply[\s\S]*lock ACCESS EXCLUSIVE/);
    expect(text.trimEnd().endsWith('exit 1')).toBe(true);
  });
});
