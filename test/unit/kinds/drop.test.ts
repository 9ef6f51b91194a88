import { describe, expect, it } from 'vitest';
import type { DropFacts } from '../../../src/changes/kinds/drop/index.js';
import type { PlanFacts } from '../../../src/changes/model.js';
import { compileProgram } from '../../../src/changes/program.js';
import { archivedBy, purgeSteps } from '../../../src/changes/archive.js';
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

  it('contract drops the indexes on the column concurrently, then archives the column; its rollback renames it back and rebuilds them', () => {
    const skipIf = (column: string): string =>
      `SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = pg_catalog.to_regclass('"public"."customers"')\n` +
      `            AND attname IN ('${column}') AND NOT attisdropped) AS done`;
    expect(program.contract.apply).toEqual([
      {
        kind: 'drop-indexes',
        description: "drop the indexes on fax concurrently (reads and writes go on), recording their definitions for contract's rollback",
        table: { schema: 'public', name: 'customers' },
        columns: ['fax'],
      },
      {
        kind: 'sql',
        description: 'archive fax as _pgshift_drop-customers-fax_fax (catalog-only)',
        statements: ['ALTER TABLE "public"."customers" RENAME COLUMN "fax" TO "_pgshift_drop-customers-fax_fax"'],
        lock: 'ACCESS EXCLUSIVE',
        transaction: true,
        timeouts: 'guarded',
        skipIf: skipIf('fax'),
      },
      {
        kind: 'record-archive',
        description: "record fax as _pgshift_drop-customers-fax_fax in the plan's state, kept for contract.keep (0: purged now)",
        columns: [{ column: 'fax', archive: '_pgshift_drop-customers-fax_fax' }],
      },
    ]);
    expect(program.contract.rollback).toEqual([
      {
        kind: 'sql',
        description:
          'give _pgshift_drop-customers-fax_fax its name back (catalog-only); rows inserted since contract keep the value they got (the default, or NULL)',
        statements: ['ALTER TABLE "public"."customers" RENAME COLUMN "_pgshift_drop-customers-fax_fax" TO "fax"'],
        lock: 'ACCESS EXCLUSIVE',
        transaction: true,
        timeouts: 'guarded',
        skipIf: skipIf('_pgshift_drop-customers-fax_fax'),
      },
      { kind: 'restore-indexes', description: 'build again CONCURRENTLY the indexes contract dropped on fax', table: { schema: 'public', name: 'customers' } },
    ]);
    expect(sql(purgeSteps({ schema: 'public', name: 'customers' }, archivedBy(program)))).toEqual([
      'ALTER TABLE "public"."customers" DROP COLUMN IF EXISTS "_pgshift_drop-customers-fax_fax"',
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

  it('then does nothing until contract, which drops the indexes and archives the column as for a nullable one, keeping its NOT NULL and default', () => {
    for (const phase of ['dual-write', 'backfill', 'switch-read', 'stop-write'] as const) {
      expect(program[phase], phase).toEqual({ apply: [], rollback: [] });
    }
    expect(sql(program.contract.apply)).toEqual([
      '-- drop-indexes',
      'ALTER TABLE "public"."customers" RENAME COLUMN "fax" TO "_pgshift_drop-customers-fax_fax"',
      '-- record-archive',
    ]);
    expect(sql(program.contract.rollback)).toEqual([
      'ALTER TABLE "public"."customers" RENAME COLUMN "_pgshift_drop-customers-fax_fax" TO "fax"',
      '-- restore-indexes',
    ]);
  });
});

describe('drop: names are quoted', () => {
  it('a schema, table and column that need quotes are quoted in every statement', () => {
    const facts = { ...factsFor(col('Fax No', 'text', true)), table: { schema: 'Sales', name: 'Customer List' } };
    const program = compileProgram(plan(`plan: drop-fax\ntable: '"Sales"."Customer List"'\ndrop: { column: Fax No, default: "'none'" }`), facts);
    expect(sql(program.expand.apply)).toEqual([`ALTER TABLE "Sales"."Customer List" ALTER COLUMN "Fax No" SET DEFAULT 'none'`]);
    expect(sql(program.contract.apply)[1]).toBe('ALTER TABLE "Sales"."Customer List" RENAME COLUMN "Fax No" TO "_pgshift_drop-fax_Fax No"');
    expect(sql(purgeSteps(facts.table, archivedBy(program)))).toEqual(['ALTER TABLE "Sales"."Customer List" DROP COLUMN IF EXISTS "_pgshift_drop-fax_Fax No"']);
  });
});
