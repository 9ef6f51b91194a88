import { describe, expect, it } from 'vitest';
import type { DropFacts } from '../../../src/changes/kinds/drop/index.js';
import type { PlanFacts } from '../../../src/changes/model.js';
import { compileProgram } from '../../../src/changes/program.js';
import type { Step } from '../../../src/changes/steps.js';
import { PHASES } from '../../../src/phases/phases.js';
import { plan } from '../../helpers/fixtures.js';

const sql = (steps: readonly Step[]): string[] => steps.flatMap((s) => (s.kind === 'sql' ? s.statements : [`-- ${s.kind}`]));

const col = (name: string, type: string, notNull = false, def: string | null = null) => ({
  name,
  type,
  notNull,
  default: def,
  collation: null,
  identity: false,
  generated: false,
});

/** What `learn` records for customers(id, fax): `setDefault` when fax is NOT NULL without a default. */
function factsFor(fax: ReturnType<typeof col>): PlanFacts & DropFacts {
  return {
    table: { schema: 'public', name: 'customers' },
    columns: [col('id', 'bigint', true), fax],
    key: [{ name: 'id', type: 'bigint' }],
    searchPath: 'public',
    newTypes: {},
    stateSchema: 'pgshift',
    serverVersion: 180000,
    drop: { setDefault: fax.notNull && fax.default === null },
  };
}

describe('drop a nullable column: exact SQL both ways', () => {
  const program = compileProgram(plan(`plan: drop-customers-fax\ntable: public.customers\ndrop: { column: fax }`), factsFor(col('fax', 'text')));

  it('does nothing from expand to stop-write, either way: no column added, no trigger, no backfill', () => {
    for (const phase of PHASES.filter((p) => p !== 'contract')) {
      expect(program[phase], phase).toEqual({ apply: [], rollback: [] });
    }
  });

  it('contract drops the indexes on the column concurrently, then the column; its rollback is refused', () => {
    expect(program.contract.apply).toEqual([
      {
        kind: 'drop-indexes',
        description: 'drop the indexes on fax concurrently (reads and writes go on)',
        table: { schema: 'public', name: 'customers' },
        columns: ['fax'],
      },
      {
        kind: 'sql',
        description: 'drop fax (catalog-only)',
        statements: ['ALTER TABLE "public"."customers" DROP COLUMN IF EXISTS "fax"'],
        lock: 'ACCESS EXCLUSIVE',
        transaction: true,
        timeouts: 'guarded',
        skipIf: undefined,
      },
    ]);
    expect(program.contract.rollback).toEqual([
      { kind: 'refuse', description: 'contract dropped fax and its data; restore it from a backup if it is needed again' },
    ]);
  });
});

describe('drop a NOT NULL column without a default: exact SQL both ways', () => {
  const program = compileProgram(
    plan(`plan: drop-customers-fax\ntable: public.customers\ndrop: { column: fax, default: "''" }`),
    factsFor(col('fax', 'text', true)),
  );

  it("expand sets drop.default for new code's inserts, unless the column has a default already; its rollback drops it", () => {
    expect(program.expand.apply).toEqual([
      {
        kind: 'sql',
        description: "default fax to '' for new code's inserts (catalog-only)",
        statements: [`ALTER TABLE "public"."customers" ALTER COLUMN "fax" SET DEFAULT ''`],
        lock: 'ACCESS EXCLUSIVE',
        transaction: true,
        timeouts: 'guarded',
        skipIf:
          'SELECT EXISTS (SELECT 1 FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum\n' +
          `        WHERE d.adrelid = to_regclass('"public"."customers"') AND a.attname = 'fax') AS done`,
      },
    ]);
    expect(sql(program.expand.rollback)).toEqual(['ALTER TABLE "public"."customers" ALTER COLUMN "fax" DROP DEFAULT']);
    expect(program.expand.rollback[0]).toMatchObject({ lock: 'ACCESS EXCLUSIVE', transaction: true, timeouts: 'guarded' });
  });

  it('then does nothing until contract, which drops the indexes and the column as for a nullable one', () => {
    for (const phase of ['dual-write', 'backfill', 'switch-read', 'stop-write'] as const) {
      expect(program[phase], phase).toEqual({ apply: [], rollback: [] });
    }
    expect(sql(program.contract.apply)).toEqual(['-- drop-indexes', 'ALTER TABLE "public"."customers" DROP COLUMN IF EXISTS "fax"']);
    expect(sql(program.contract.rollback)).toEqual(['-- refuse']);
  });
});

describe('drop: names are quoted', () => {
  it('a schema, table and column that need quotes are quoted in every statement', () => {
    const facts = { ...factsFor(col('Fax No', 'text', true)), table: { schema: 'Sales', name: 'Customer List' } };
    const program = compileProgram(plan(`plan: drop-fax\ntable: '"Sales"."Customer List"'\ndrop: { column: Fax No, default: "'none'" }`), facts);
    expect(sql(program.expand.apply)).toEqual([`ALTER TABLE "Sales"."Customer List" ALTER COLUMN "Fax No" SET DEFAULT 'none'`]);
    expect(sql(program.contract.apply)[1]).toBe('ALTER TABLE "Sales"."Customer List" DROP COLUMN IF EXISTS "Fax No"');
  });
});
