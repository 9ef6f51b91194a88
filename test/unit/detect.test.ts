import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { detect } from '../../src/api/detect.js';
import { PlanError } from '../../src/errors.js';
import { parsePlan } from '../../src/plan/load.js';

/**
 * `detect` over migration files written the way Prisma and Drizzle emit them
 * and by hand: every unsafe statement found with its file and line, nothing
 * reported on the clean ones, and the plan that replaces each column change.
 */

const FIXTURES = fileURLToPath(new URL('../fixtures/migrations/', import.meta.url));
const rel = (file: string): string => path.relative(FIXTURES, file);

/** Every unsafe statement of the fixture folder: [file, line, rule]. The other files are clean. */
const EXPECTED = [
  ['drizzle/0001_rename_username.sql', 1, 'rename-column'],
  ['drizzle/0002_age_check.sql', 1, 'constraint-validated'],
  ['drizzle/0003_email_unique.sql', 2, 'constraint-builds-index'],
  ['prisma/20240201000000_rename_name/migration.sql', 8, 'drop-add-rename'],
  ['prisma/20240301000000_price_decimal/migration.sql', 2, 'retype-rewrite'],
  ['prisma/20240401000000_order_user_index/migration.sql', 2, 'index-not-concurrent'],
  ['prisma/20240501000000_required_email/migration.sql', 8, 'set-not-null'],
  ['prisma/20240601000000_order_user_fk/migration.sql', 2, 'constraint-validated'],
  ['sql/004_orders_amount_numeric.sql', 3, 'retype-rewrite'],
  ['sql/005_audit_and_display_name.sql', 5, 'rename-column'],
];

describe('detect', () => {
  it('finds every unsafe statement with its file and line, and nothing in the clean files', async () => {
    const result = await detect([FIXTURES]);
    expect(result.files.length).toBeGreaterThanOrEqual(12);
    expect(result.findings.map((f) => [rel(f.file), f.line, f.rule])).toEqual(EXPECTED);
    const clean = result.files.map(rel).filter((f) => !EXPECTED.some(([file]) => file === f));
    expect(clean).toEqual([
      'drizzle/0000_warm_lady_deathstrike.sql',
      'prisma/20240101000000_init/migration.sql',
      'prisma/20240701000000_nickname/migration.sql',
      'sql/001_accounts_owner_not_null.sql',
      'sql/002_accounts_slug_unique.sql',
      'sql/003_accounts_owner_fk.sql',
    ]);
    for (const f of result.findings) expect(f.why.length).toBeGreaterThan(20);
  });

  it('proposes the plan that replaces each column change', async () => {
    const { findings } = await detect([FIXTURES]);
    const plans = Object.fromEntries(findings.filter((f) => f.plan).map((f) => [rel(f.file), f.plan!]));
    const prismaRename = parsePlan(plans['prisma/20240201000000_rename_name/migration.sql']!.yaml, 'x.yaml');
    expect(prismaRename).toMatchObject({ name: 'rename-user-name', table: { name: 'User' }, change: { kind: 'rename', column: 'name', to: 'fullName' } });
    const drizzleRename = parsePlan(plans['drizzle/0001_rename_username.sql']!.yaml, 'x.yaml');
    expect(drizzleRename).toMatchObject({ table: { name: 'users' }, change: { kind: 'rename', column: 'user_name', to: 'username' } });
    expect(parsePlan(plans['sql/005_audit_and_display_name.sql']!.yaml, 'x.yaml').change).toMatchObject({ column: 'Name', to: 'display_name' });
    // A retype keeps the USING the file wrote; its way back needs a person, and the plan refuses to load until then.
    const retype = plans['sql/004_orders_amount_numeric.sql']!.yaml;
    expect(retype).toMatch(/table: billing\.orders/);
    expect(retype).toMatch(/to: numeric\(12,2\)/);
    expect(retype).toContain("using: replace(amount, ',', '.')::numeric(12,2)");
    expect(() => parsePlan(retype, 'retype.yaml')).toThrow(/retype\.reverse: is a placeholder \(TODO\(pgshift\):\)/);
    expect(plans['prisma/20240301000000_price_decimal/migration.sql']!.yaml).toMatch(/to: DECIMAL\(10,2\)\n[\s\S]*using: price::DECIMAL\(10,2\)/);
    expect(Object.keys(plans).sort()).toEqual([
      'drizzle/0001_rename_username.sql',
      'prisma/20240201000000_rename_name/migration.sql',
      'prisma/20240301000000_price_decimal/migration.sql',
      'prisma/20240401000000_order_user_index/migration.sql',
      'prisma/20240501000000_required_email/migration.sql',
      'sql/004_orders_amount_numeric.sql',
      'sql/005_audit_and_display_name.sql',
    ]);
  });

  it('proposes an index plan for a CREATE INDEX without CONCURRENTLY on plain columns, and none for an expression or predicate', async () => {
    const { found, findings } = await detectSql(
      USERS,
      [
        'CREATE UNIQUE INDEX users_org_name ON users (org_id, name);',
        'CREATE INDEX users_lower_name ON users (lower(name));',
        'CREATE INDEX users_named ON users (name) WHERE name IS NOT NULL;',
        'CREATE INDEX users_name_desc ON users (name DESC);',
        'CREATE INDEX ON users (bio);',
      ].join('\n'),
    );
    expect(found).toEqual([1, 2, 3, 4, 5].map((line) => [line, 'index-not-concurrent']));
    expect(findings.map((f) => f.plan !== undefined)).toEqual([true, false, false, false, false]);
    expect(suggestedYaml(findings[0]!)).toContain('plan: index-users-users-org-name');
    expect(parsePlan(suggestedYaml(findings[0]!), 'x.yaml')).toMatchObject({
      table: { name: 'users' },
      change: { kind: 'index', name: 'users_org_name', columns: ['org_id', 'name'], unique: true },
    });
  });

  it('writes the plans, never over a file that exists', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-detect-'));
    const first = await detect([path.join(FIXTURES, 'drizzle')], { writeTo: dir });
    expect(first.written.map((w) => path.basename(w))).toEqual(['rename-users-user-name.yaml']);
    expect(await readFile(path.join(dir, 'rename-users-user-name.yaml'), 'utf8')).toMatch(
      /^# Written by `migrate plan detect` for .*0001_rename_username\.sql:1\./,
    );
    const again = await detect([path.join(FIXTURES, 'drizzle')], { writeTo: dir });
    expect(again.written).toEqual([]);
    expect(await readdir(dir)).toEqual(['rename-users-user-name.yaml']);
  });

  it('reads an empty file as no statements (ory/kratos ships empty migrations for other databases)', async () => {
    expect((await detectSql('', USERS)).found).toEqual([]);
  });

  it('names the file and line of SQL that does not parse', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-detect-'));
    const file = path.join(dir, 'bad.sql');
    await (await import('node:fs/promises')).writeFile(file, 'SELECT 1;\nALTER TABLE users RENAME COLUM a TO b;\n');
    const error = await detect([file]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as PlanError).message).toMatch(/bad\.sql:2: does not parse as SQL/);
  });
});

/** Detect over migration files written to a scratch folder, in order: [line, rule] of each finding, and the findings. */
async function detectSql(...files: string[]): Promise<{ found: [number, string][]; findings: Awaited<ReturnType<typeof detect>>['findings'] }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-detect-'));
  const fs = await import('node:fs/promises');
  for (const [i, sql] of files.entries()) await fs.writeFile(path.join(dir, `${String(i).padStart(3, '0')}.sql`), sql);
  const { findings } = await detect([dir]);
  return { found: findings.map((f) => [f.line, f.rule]), findings };
}

const USERS =
  'CREATE TABLE users (id bigint PRIMARY KEY, name varchar(100), bio text, price numeric(10,2), org_id bigint REFERENCES orgs(id), team_id bigint REFERENCES teams(id));\n';

describe('detect: the classes real migrations showed it missed', () => {
  it('a DROP COLUMN on its own, with the drop plan', async () => {
    const { found, findings } = await detectSql(USERS, 'SELECT 1;\nALTER TABLE users DROP COLUMN bio;\n');
    expect(found).toEqual([[2, 'drop-column']]);
    expect(parsePlan(suggestedYaml(findings[0]!), 'x.yaml')).toMatchObject({ table: { name: 'users' }, change: { kind: 'drop', column: 'bio' } });
  });

  it('SET NOT NULL on an existing table, with the constrain plan (no fix: lint names the NULLs until one is written)', async () => {
    const { found, findings } = await detectSql(USERS, 'ALTER TABLE users ALTER COLUMN bio SET NOT NULL;\n');
    expect(found).toEqual([[1, 'set-not-null']]);
    expect(findings[0]!.fix).toMatch(/the pgshift `constrain` plan does this and fixes old code's NULLs/);
    expect(parsePlan(suggestedYaml(findings[0]!), 'x.yaml')).toMatchObject({
      name: 'constrain-users-bio',
      table: { name: 'users' },
      change: { kind: 'constrain', column: 'bio', not_null: true },
    });
  });

  it('DROP TABLE of an existing table, not of one the file creates', async () => {
    const { found, findings } = await detectSql(USERS, 'CREATE TABLE tmp (a int);\nDROP TABLE tmp;\nDROP TABLE IF EXISTS users CASCADE;\n');
    expect(found).toEqual([[3, 'drop-table']]);
    expect(findings[0]!.change).toBeUndefined();
  });

  it('a table renamed, with the rename-table plan, and an enum type renamed, but not a Prisma enum swap', async () => {
    const { found, findings } = await detectSql(
      USERS + "CREATE TYPE \"Role\" AS ENUM ('A', 'B');\nCREATE TYPE mood AS ENUM ('x');\n",
      [
        'ALTER TABLE users RENAME TO accounts;',
        'ALTER TYPE mood RENAME TO feeling;',
        'BEGIN;',
        'CREATE TYPE "Role_new" AS ENUM (\'A\');',
        'ALTER TYPE "Role" RENAME TO "Role_old";',
        'ALTER TYPE "Role_new" RENAME TO "Role";',
        'DROP TYPE "Role_old";',
        'COMMIT;',
        'ALTER TABLE orgs RENAME TO legacy_orgs;',
        'CREATE TABLE orgs (id bigint, name text);',
      ].join('\n'),
    );
    // The last rename is a swap too: a new table takes the old name in the same file.
    expect(found).toEqual([
      [1, 'rename-table'],
      [2, 'rename-type'],
    ]);
    expect(findings[0]!.change).toEqual({ kind: 'rename-table', table: { schema: undefined, name: 'users' }, to: 'accounts' });
    expect(parsePlan(findings[0]!.plan!.yaml, 'x.yaml')).toMatchObject({
      name: 'rename-table-users-accounts',
      table: { name: 'users' },
      change: { kind: 'rename-table', to: 'accounts' },
    });
    expect(findings[1]!.plan).toBeUndefined();
  });

  it('ADD COLUMN that rewrites the table (SERIAL, identity, a volatile default), and NOT NULL without a default', async () => {
    const { found, findings } = await detectSql(
      USERS,
      [
        'ALTER TABLE users ADD COLUMN seq SERIAL;',
        'ALTER TABLE users ADD COLUMN big bigserial NOT NULL;',
        'ALTER TABLE users ADD COLUMN ident int GENERATED ALWAYS AS IDENTITY;',
        'ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();',
        'ALTER TABLE users ADD COLUMN created timestamptz NOT NULL DEFAULT now();',
        'ALTER TABLE users ADD COLUMN email text NOT NULL;',
        'ALTER TABLE users ADD COLUMN nick text;',
      ].join('\n'),
    );
    expect(found).toEqual([
      [1, 'add-column-rewrite'],
      [2, 'add-column-rewrite'],
      [3, 'add-column-rewrite'],
      [4, 'add-column-rewrite'],
      [6, 'add-column-required'],
    ]);
    expect(findings.at(-1)!.fix).toMatch(/`add` plan/);
  });

  it('an add plan for a volatile default (the call is the value and the default) and for NOT NULL without a default (a placeholder)', async () => {
    const { findings } = await detectSql(
      USERS,
      ['ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();', 'ALTER TABLE users ADD COLUMN email text NOT NULL;'].join('\n'),
    );
    expect(findings.map((f) => f.rule)).toEqual(['add-column-rewrite', 'add-column-required']);
    expect(parsePlan(suggestedYaml(findings[0]!), 'x.yaml')).toMatchObject({
      name: 'add-users-token',
      table: { name: 'users' },
      change: { kind: 'add', column: 'token', type: 'uuid', not_null: true, value: 'gen_random_uuid()', default: 'gen_random_uuid()' },
    });
    const email = suggestedYaml(findings[1]!);
    expect(email).toMatch(/add:\n {2}column: email\n {2}type: text\n {2}not_null: true\n {2}value: "TODO\(pgshift\):/);
    expect(() => parsePlan(email, 'x.yaml')).toThrow(/add\.value: is a placeholder \(TODO\(pgshift\):\)/);
  });

  it("a foreign key inside drizzle-kit's DO … EXCEPTION WHEN duplicate_object wrapper, at its line", async () => {
    const wrapped = (table: string): string =>
      `DO $$ BEGIN\n ALTER TABLE "${table}" ADD CONSTRAINT "${table}_org_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE no action ON UPDATE no action;\nEXCEPTION\n WHEN duplicate_object THEN null;\nEND $$;\n`;
    const { found } = await detectSql(
      USERS,
      `CREATE TABLE "posts" ("org_id" bigint);\n--> statement-breakpoint\n${wrapped('posts')}--> statement-breakpoint\n${wrapped('users')}`,
    );
    expect(found).toEqual([[10, 'constraint-validated']]);
  });

  it('VALIDATE CONSTRAINT in the transaction of its ADD … NOT VALID (a file is one transaction), not after a COMMIT', async () => {
    const add = 'ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs(id) NOT VALID;';
    const validate = 'ALTER TABLE users VALIDATE CONSTRAINT users_org_fk;';
    expect((await detectSql(USERS, `${add}\n${validate}\n`)).found).toEqual([[2, 'validate-same-transaction']]);
    expect((await detectSql(USERS, `BEGIN;\n${add}\n${validate}\nCOMMIT;\n`)).found).toEqual([[3, 'validate-same-transaction']]);
    expect((await detectSql(USERS, `BEGIN;\n${add}\nCOMMIT;\n${validate}\n`)).found).toEqual([]);
  });

  it('an UPDATE under LOCK TABLE or under the ACCESS EXCLUSIVE of an earlier ALTER in the same transaction', async () => {
    expect((await detectSql(USERS, "BEGIN;\nLOCK TABLE users;\nUPDATE users SET bio = '';\nCOMMIT;\n")).found).toEqual([[3, 'update-under-lock']]);
    const { found } = await detectSql(
      USERS,
      "ALTER TABLE users ADD COLUMN nick text;\nUPDATE users SET nick = name WHERE nick IS NULL;\nUPDATE users SET nick = 'x' WHERE id = 1;\n",
    );
    expect(found).toEqual([
      [2, 'update-under-lock'],
      [3, 'update-under-lock'],
    ]);
    // A COMMIT in between ends the lock; an UPDATE alone takes row locks only.
    expect((await detectSql(USERS, 'BEGIN;\nALTER TABLE users ADD COLUMN nick text;\nCOMMIT;\nUPDATE users SET nick = name;\n')).found).toEqual([]);
  });
});

describe('detect: what is safe is not flagged', () => {
  it('a varchar widened, varchar to text, numeric(p,s) to numeric: no rewrite; a narrowing or an unknown old type still is', async () => {
    const { found } = await detectSql(
      USERS,
      [
        'ALTER TABLE users ALTER COLUMN name TYPE varchar(200);',
        'ALTER TABLE users ALTER COLUMN name SET DATA TYPE TEXT;',
        'ALTER TABLE users ALTER COLUMN price TYPE numeric;',
        'ALTER TABLE users ALTER COLUMN bio TYPE varchar(10);',
        'ALTER TABLE others ALTER COLUMN x TYPE varchar(200);',
        'ALTER TABLE users ALTER COLUMN name TYPE varchar(300) USING lower(name);',
      ].join('\n'),
    );
    expect(found).toEqual([
      [4, 'retype-rewrite'],
      [5, 'retype-rewrite'],
      [6, 'retype-rewrite'],
    ]);
  });

  it('views and materialized views the file creates, and indexes on them', async () => {
    const { found } = await detectSql(
      USERS,
      [
        'CREATE MATERIALIZED VIEW user_stats AS SELECT org_id, count(*) FROM users GROUP BY org_id;',
        'CREATE UNIQUE INDEX user_stats_org ON user_stats (org_id);',
        'CREATE VIEW active_users AS SELECT * FROM users;',
        'CREATE INDEX users_name ON users (name);',
      ].join('\n'),
    );
    expect(found).toEqual([[4, 'index-not-concurrent']]);
  });
});

describe('detect: only plans it can stand behind', () => {
  it("a column dropped and re-added under its name is a retype (Prisma's type change), never a rename to itself", async () => {
    const { found, findings } = await detectSql(USERS, 'ALTER TABLE "users" DROP COLUMN "bio",\nADD COLUMN "bio" JSONB;\n');
    expect(found).toEqual([[1, 'drop-add-retype']]);
    expect(parsePlan(suggestedYaml(findings[0]!).replace(/reverse: .*/, 'reverse: bio::text'), 'x.yaml').change).toMatchObject({
      kind: 'retype',
      column: 'bio',
      to: 'jsonb',
    });
  });

  it('a USING clause is cut at its tokens: the type stays the type, the expression whole', async () => {
    const { findings } = await detectSql(
      'CREATE TYPE "ScoreSource_new" AS ENUM (\'API\');\nCREATE TABLE "Score" (id int, "source" text, n text);\n',
      'ALTER TABLE "Score" ALTER COLUMN "source" TYPE "ScoreSource_new" USING ("source"::text::"ScoreSource_new"), ALTER COLUMN n TYPE int USING (n::int /* , ; */), ALTER COLUMN id TYPE bigint;\n',
    );
    expect(findings.map((f) => f.change)).toEqual([
      expect.objectContaining({ column: 'source', to: '"ScoreSource_new"', using: '("source"::text::"ScoreSource_new")' }),
      expect.objectContaining({ column: 'n', to: 'int', using: '(n::int /* , ; */)' }),
      expect.objectContaining({ column: 'id', to: 'bigint', using: undefined }),
    ]);
  });

  it('a drop and an add are a rename only when type, nullability and references agree; otherwise the finding says why', async () => {
    const agree = await detectSql(
      USERS,
      'ALTER TABLE users DROP COLUMN org_id, ADD COLUMN organization_id bigint;\nALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (organization_id) REFERENCES orgs(id) NOT VALID;\n',
    );
    expect(agree.findings.map((f) => [f.rule, f.change])).toEqual([
      ['drop-add-rename', expect.objectContaining({ kind: 'rename', column: 'org_id', to: 'organization_id' })],
    ]);

    const otherTarget = await detectSql(
      USERS,
      'ALTER TABLE users DROP COLUMN org_id, ADD COLUMN team bigint;\nALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (team) REFERENCES teams(id) NOT VALID;\n',
    );
    expect(otherTarget.findings.map((f) => [f.rule, f.change])).toEqual([['drop-column', undefined]]);
    expect(otherTarget.findings[0]!.why).toMatch(/Not a rename: "team" differs in references \(public\.orgs → public\.teams\)/);

    const otherType = await detectSql(USERS, 'ALTER TABLE users DROP COLUMN bio, ADD COLUMN score integer;\n');
    expect(otherType.findings[0]).toMatchObject({
      rule: 'drop-column',
      change: undefined,
      why: expect.stringMatching(/"score" differs in type \(text → integer\)/),
    });

    const unknown = await detectSql('ALTER TABLE users DROP COLUMN bio, ADD COLUMN about text;\n');
    expect(unknown.findings[0]).toMatchObject({ rule: 'drop-add-rename', change: undefined, fix: expect.stringMatching(/cannot be checked/) });
  });
});

function suggestedYaml(f: { plan?: { yaml: string } | undefined }): string {
  return f.plan!.yaml;
}
