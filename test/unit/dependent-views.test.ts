import { describe, expect, it } from 'vitest';
import type { DependentView } from '../../src/changes/dependent-views.js';
import type { ColumnChange, PlanFacts } from '../../src/changes/model.js';
import { compileProgram } from '../../src/changes/program.js';
import { archivedBy, purgeSteps } from '../../src/changes/archive.js';
import { substitute } from '../../src/plan/view-rewrite.js';
import type { SqlStep, Step } from '../../src/changes/steps.js';
import { plan, SPLIT_YAML } from '../helpers/fixtures.js';

const TOKEN = 'pgshift_0123456789abcdef01234567';

const split: ColumnChange = {
  old: [{ name: 'full_name', type: 'text', notNull: true, default: null, reverse: "concat_ws(' ', first_name, last_name)" }],
  new: ['first_name', 'last_name'].map((name) => ({
    name,
    type: 'text',
    collation: null,
    forward: '',
    notNull: false,
    default: null,
    defaultFrom: 'switch-read' as const,
    unique: false,
  })),
};
const rename: ColumnChange = {
  old: [{ name: 'user_name', type: 'text', notNull: false, default: null, reverse: '"username"' }],
  new: [{ name: 'username', type: 'text', collation: null, forward: '"user_name"', notNull: false, default: null, defaultFrom: 'expand', unique: false }],
};

describe('substitute: only the token is replaced, with the qualifier PostgreSQL printed', () => {
  it('rename: the new column, keeping the qualifier', () => {
    const text = ` SELECT u.${TOKEN} AS user_name, "Odd Alias".${TOKEN}, ${TOKEN}x, '${TOKEN.slice(0, 8)}'::text FROM public.users u`;
    expect(substitute(text, [{ old: rename.old[0]!, token: TOKEN }], rename)).toBe(
      ` SELECT u."username" AS user_name, "Odd Alias"."username", ${TOKEN}x, 'pgshift_'::text FROM public.users u`,
    );
  });

  it('split: a scalar subquery evaluating reverse over the qualified new columns', () => {
    const text = ` SELECT id, upper(${TOKEN}) AS shout FROM public.users WHERE users.${TOKEN} <> ''::text`;
    expect(substitute(text, [{ old: split.old[0]!, token: TOKEN }], split)).toBe(
      ` SELECT id, upper((SELECT (concat_ws(' ', first_name, last_name))::text FROM (SELECT "first_name", "last_name") AS pgshift_new("first_name", "last_name"))) AS shout` +
        ` FROM public.users WHERE (SELECT (concat_ws(' ', first_name, last_name))::text FROM (SELECT users."first_name", users."last_name") AS pgshift_new("first_name", "last_name")) <> ''::text`,
    );
  });
});

describe('compiled steps', () => {
  const view: DependentView = {
    view: { schema: 'public', name: 'names' },
    kind: 'view',
    original: ' SELECT full_name FROM public.users',
    rewritten: ' SELECT (SELECT 1) AS full_name FROM public.users',
    options: ['security_barrier=true'],
  };
  const matview: DependentView = {
    view: { schema: 'public', name: 'snap' },
    kind: 'materialized',
    original: ' SELECT id, full_name FROM public.users',
    rewritten: ' SELECT id, (SELECT 1) AS full_name FROM public.users',
    options: [],
    matview: {
      populated: true,
      indexes: [{ name: 'snap_id', unique: true, definition: 'USING btree (id)' }],
      grants: [{ privilege: 'SELECT', grantee: null, grantable: false }],
      owner: null,
      comment: null,
    },
  };
  const facts: PlanFacts = {
    table: { schema: 'public', name: 'users' },
    columns: [
      { name: 'id', type: 'bigint', notNull: true, default: null, collation: null, identity: false, generated: false },
      { name: 'full_name', type: 'text', notNull: false, default: null, collation: null, identity: false, generated: false },
    ],
    key: [{ name: 'id', type: 'bigint' }],
    searchPath: 'public',
    newTypes: { first_name: 'text', last_name: 'text' },
    stateSchema: 'pgshift',
    serverVersion: 180000,
    views: [view, matview],
  };
  const program = compileProgram(plan(SPLIT_YAML), facts);
  const sql = (steps: readonly Step[]): string[] => steps.filter((s): s is SqlStep => s.kind === 'sql').flatMap((s) => s.statements);

  it('stop-write redefines the view in place and swaps a rebuilt materialized view in; its rollback restores both', () => {
    const apply = sql(program['stop-write'].apply);
    // In place, after a check that the view is the original (or already ours).
    expect(apply).toContain(`CREATE OR REPLACE VIEW "public"."names" WITH (security_barrier = 'true') AS  SELECT (SELECT 1) AS full_name FROM public.users`);
    expect(apply.find((s) => s.startsWith('DO ') && s.includes('"public"."names"'))).toContain('RAISE EXCEPTION');
    expect(apply).toContain(`CREATE MATERIALIZED VIEW "public"."snap_pgshift_new" AS  SELECT id, (SELECT 1) AS full_name FROM public.users WITH DATA`);
    expect(apply).toContain(`CREATE UNIQUE INDEX "snap_id_pgshift_new" ON "public"."snap_pgshift_new" USING btree (id)`);
    expect(apply).toContain(`GRANT SELECT ON "public"."snap_pgshift_new" TO PUBLIC`);
    expect(apply.slice(-4)).toEqual([
      'ALTER MATERIALIZED VIEW "public"."snap" RENAME TO "snap_pgshift_old"',
      'ALTER INDEX "public"."snap_id" RENAME TO "snap_id_pgshift_old"',
      'ALTER MATERIALIZED VIEW "public"."snap_pgshift_new" RENAME TO "snap"',
      'ALTER INDEX "public"."snap_id_pgshift_new" RENAME TO "snap_id"',
    ]);
    const rollback = sql(program['stop-write'].rollback);
    const restore = rollback.find((s) => s.startsWith('DO ') && s.includes('CREATE OR REPLACE VIEW'))!;
    // Back from pgshift's definition only; a view someone changed since is left alone, so a rollback is never stuck.
    expect(restore).toContain(
      `= ' SELECT (SELECT 1) AS full_name FROM public.users;' THEN EXECUTE 'CREATE OR REPLACE VIEW "public"."names" WITH (security_barrier = ''true'') AS  SELECT full_name FROM public.users'`.replaceAll(
        "'",
        "''",
      ),
    );
    expect(restore).not.toContain('RAISE EXCEPTION');
    expect(rollback).toContain('ALTER MATERIALIZED VIEW "public"."snap_pgshift_old" RENAME TO "snap"');
    expect(rollback).toContain('DROP MATERIALIZED VIEW IF EXISTS "public"."snap_pgshift_new"');
  });

  it('contract keeps the parked original (it reads the archived column); purge drops it in the transaction that drops the column, before it', () => {
    const [, main] = program.contract.apply as SqlStep[];
    expect(main!.statements.join('\n')).not.toContain('snap_pgshift_old');
    const [purge] = purgeSteps(facts.table, archivedBy(program), facts.views);
    const drop = purge!.statements.indexOf('DROP MATERIALIZED VIEW IF EXISTS "public"."snap_pgshift_old"');
    expect(drop).toBeGreaterThan(-1);
    expect(drop).toBeLessThan(purge!.statements.findIndex((s) => s.includes('DROP COLUMN')));
  });
});
