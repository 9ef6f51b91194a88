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
      'sql/004_orders_amount_numeric.sql',
      'sql/005_audit_and_display_name.sql',
    ]);
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

  it('names the file and line of SQL that does not parse', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-detect-'));
    const file = path.join(dir, 'bad.sql');
    await (await import('node:fs/promises')).writeFile(file, 'SELECT 1;\nALTER TABLE users RENAME COLUM a TO b;\n');
    const error = await detect([file]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as PlanError).message).toMatch(/bad\.sql:2: does not parse as SQL/);
  });
});
