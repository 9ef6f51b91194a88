import { describe, expect, it } from 'vitest';
import type { RenameTableFacts } from '../../../src/changes/kinds/rename-table/learn.js';
import { renameTable, VIEW_LIMITS } from '../../../src/changes/kinds/rename-table/index.js';
import type { PlanFacts } from '../../../src/changes/model.js';
import { compileProgram } from '../../../src/changes/program.js';
import type { SqlStep, Step } from '../../../src/changes/steps.js';
import { plan } from '../../helpers/fixtures.js';

const sql = (steps: readonly Step[]): string[] => steps.flatMap((s) => (s.kind === 'sql' ? s.statements : [`-- ${s.kind}`]));

/** What `learn` records for public.customers owned by "owner", with a table grant, a column grant and one to PUBLIC. */
function factsFor(serverVersion: number, table = { schema: 'public', name: 'customers' }): PlanFacts & RenameTableFacts {
  return {
    table,
    columns: [{ name: 'id', type: 'bigint', notNull: true, default: null, collation: null, identity: false, generated: false }],
    key: [{ name: 'id', type: 'bigint' }],
    searchPath: 'public',
    newTypes: {},
    stateSchema: 'pgshift',
    serverVersion,
    renameTable: {
      to: 'clients',
      owner: 'owner',
      securityInvoker: serverVersion >= 150000,
      grants: [
        { grantee: null, privileges: ['SELECT'], grantable: false },
        { grantee: 'app', privileges: ['DELETE', 'INSERT', 'SELECT', 'UPDATE'], grantable: false },
        { grantee: 'auditor', privileges: ['SELECT'], columns: ['id', 'email'], grantable: true },
      ],
    },
  };
}

const YAML = `plan: rename-table-customers-clients\ntable: public.customers\nrename-table: { to: clients }`;

describe('rename-table on PostgreSQL 15 and later: exact SQL both ways', () => {
  const program = compileProgram(plan(YAML), factsFor(180000));

  it('does nothing in expand, dual-write, backfill and stop-write, either way', () => {
    for (const phase of ['expand', 'dual-write', 'backfill', 'stop-write'] as const) expect(program[phase], phase).toEqual({ apply: [], rollback: [] });
  });

  it('switch-read renames the table and makes a security_invoker view under the old name, with the owner and grants, in one step', () => {
    expect(program['switch-read'].apply).toEqual([
      {
        kind: 'sql',
        description: 'rename public.customers to clients and create the view customers over it for old code (catalog-only)',
        statements: [
          'ALTER TABLE "public"."customers" RENAME TO "clients"',
          'CREATE VIEW "public"."customers" WITH (security_invoker = true) AS SELECT * FROM "public"."clients"',
          `COMMENT ON VIEW "public"."customers" IS 'pgshift: old code''s name for clients until the plan renaming it contracts'`,
          'ALTER VIEW "public"."customers" OWNER TO "owner"',
          'GRANT SELECT ON "public"."customers" TO PUBLIC',
          'GRANT DELETE, INSERT, SELECT, UPDATE ON "public"."customers" TO "app"',
          'GRANT SELECT ("id", "email") ON "public"."customers" TO "auditor" WITH GRANT OPTION',
        ],
        lock: 'ACCESS EXCLUSIVE',
        transaction: true,
        timeouts: 'guarded',
        skipIf: `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass('"public"."customers"') AND relkind = 'v') AS done`,
      },
    ]);
  });

  it("switch-read's rollback drops the view and renames the table back, claiming both", () => {
    expect(program['switch-read'].rollback).toEqual([
      {
        kind: 'sql',
        description: 'drop the view customers and rename clients back to customers (catalog-only)',
        statements: ['DROP VIEW IF EXISTS "public"."customers"', 'ALTER TABLE "public"."clients" RENAME TO "customers"'],
        lock: 'ACCESS EXCLUSIVE',
        locks: [
          { table: { schema: 'public', name: 'clients' }, mode: 'ACCESS EXCLUSIVE' },
          { table: { schema: 'public', name: 'customers' }, mode: 'ACCESS EXCLUSIVE' },
        ],
        transaction: true,
        timeouts: 'guarded',
        skipIf: `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass('"public"."customers"') AND relkind IN ('r', 'p')) AS done`,
      },
    ]);
  });

  it('contract drops the view only; its rollback creates it again, locking the table in ACCESS SHARE', () => {
    expect(program.contract.apply).toEqual([
      {
        kind: 'sql',
        description: 'drop the view customers old code used (catalog-only)',
        statements: ['DROP VIEW IF EXISTS "public"."customers"'],
        lock: 'ACCESS EXCLUSIVE',
        transaction: true,
        timeouts: 'guarded',
        skipIf: `SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass('"public"."customers"') AND relkind = 'v') AS done`,
      },
    ]);
    const [again] = program.contract.rollback as SqlStep[];
    expect(again!.statements).toEqual((program['switch-read'].apply[0] as SqlStep).statements.slice(1));
    expect(again!.locks).toEqual([{ table: { schema: 'public', name: 'clients' }, mode: 'ACCESS SHARE' }]);
  });
});

describe('rename-table on PostgreSQL 14', () => {
  it('makes a plain view, owned by the table owner, whose privileges are checked on the table', () => {
    const program = compileProgram(plan(YAML), factsFor(140000));
    expect(sql(program['switch-read'].apply).slice(0, 4)).toEqual([
      'ALTER TABLE "public"."customers" RENAME TO "clients"',
      'CREATE VIEW "public"."customers" AS SELECT * FROM "public"."clients"',
      `COMMENT ON VIEW "public"."customers" IS 'pgshift: old code''s name for clients until the plan renaming it contracts'`,
      'ALTER VIEW "public"."customers" OWNER TO "owner"',
    ]);
  });
});

describe('rename-table: names are quoted, and lint says what old code cannot do', () => {
  it('a schema, table and new name that need quotes are quoted in every statement', () => {
    const program = compileProgram(
      plan(`plan: rt\ntable: '"Sales"."Customer List"'\nrename-table: { to: Client "List" }`),
      factsFor(180000, { schema: 'Sales', name: 'Customer List' }),
    );
    expect(sql(program['switch-read'].apply).slice(0, 2)).toEqual([
      'ALTER TABLE "Sales"."Customer List" RENAME TO "Client ""List"""',
      'CREATE VIEW "Sales"."Customer List" WITH (security_invoker = true) AS SELECT * FROM "Sales"."Client ""List"""',
    ]);
    expect(sql(program['switch-read'].rollback)).toEqual([
      'DROP VIEW IF EXISTS "Sales"."Customer List"',
      'ALTER TABLE "Sales"."Client ""List""" RENAME TO "Customer List"',
    ]);
    expect(sql(program.contract.apply)).toEqual(['DROP VIEW IF EXISTS "Sales"."Customer List"']);
  });

  it('gives the release queue the new name as another name of the table', () => {
    expect(renameTable.alsoNamed(factsFor(180000))).toEqual([{ schema: 'public', name: 'clients' }]);
  });

  it('warns of every limit of the view', () => {
    const [warning] = renameTable.warnings({ to: 'clients' });
    for (const limit of ['COPY … FROM', 'TRUNCATE', 'ON CONFLICT ON CONSTRAINT', 'LOCK TABLE', 'DDL']) expect(warning).toContain(limit);
    for (const limit of VIEW_LIMITS) expect(warning).toContain(limit);
  });
});
