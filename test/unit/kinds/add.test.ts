import { describe, expect, it } from 'vitest';
import type { AddFacts } from '../../../src/changes/kinds/add/learn.js';
import type { PlanFacts } from '../../../src/changes/model.js';
import { compileProgram } from '../../../src/changes/program.js';
import type { Step } from '../../../src/changes/steps.js';
import { fillNewAssignments, differsPredicate, newSideStale } from '../../../src/backfill/consistency.js';
import { resolveChange } from '../../../src/changes/kinds/registry.js';
import { objectNames } from '../../../src/changes/sql-objects.js';
import { plan } from '../../helpers/fixtures.js';

const sql = (steps: readonly Step[]): string[] => steps.flatMap((s) => (s.kind === 'sql' ? s.statements : [`-- ${s.kind}`]));
const locks = (steps: readonly Step[]): string[] => steps.flatMap((s) => (s.kind === 'sql' ? [s.lock] : []));

const col = (name: string, type: string, notNull = false) => ({ name, type, notNull, default: null, collation: null, identity: false, generated: false });

/** What `learn` records for orders(id, country) and `value: lower(country)`: the column it reads, the value printed bound. */
const facts: PlanFacts & AddFacts = {
  table: { schema: 'public', name: 'orders' },
  columns: [col('id', 'bigint', true), col('country', 'text')],
  key: [{ name: 'id', type: 'bigint' }],
  searchPath: 'public',
  newTypes: { currency: 'text' },
  stateSchema: 'pgshift',
  serverVersion: 180000,
  add: { reads: [{ name: 'country', type: 'text' }] },
  inline: {
    label: 'pgshift_expr',
    oldTypes: ['text'],
    newTypes: ['text'],
    forward: ['lower(country)'],
    reverse: [],
    oldDefaults: [],
    forwardOnNew: ['lower(new.country)'],
    perEvent: false,
    bound: true,
  },
};

const T = '"public"."orders"';
const TRIGGER = '"pgshift_add-orders-currency"';
const FILL = `CREATE OR REPLACE FUNCTION "pgshift"."add-orders-currency_sync"() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgshift_body$
-- pgshift add: fill "currency" where a write leaves it NULL
BEGIN
  IF NEW."currency" IS NULL THEN
    NEW."currency" := lower(new.country);
  END IF;
  RETURN NEW;
END
$pgshift_body$`;
const INSTALL = [
  "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)",
  'CREATE OR REPLACE FUNCTION "pgshift"."add-orders-currency_fwd0"("country" text) RETURNS text LANGUAGE sql\nRETURN lower(country)',
  FILL,
  `CREATE OR REPLACE TRIGGER ${TRIGGER} BEFORE INSERT OR UPDATE ON ${T}\nFOR EACH ROW\nEXECUTE FUNCTION "pgshift"."add-orders-currency_sync"()`,
];
const REMOVE = [
  `DROP TRIGGER IF EXISTS ${TRIGGER} ON ${T}`,
  'DROP FUNCTION IF EXISTS "pgshift"."add-orders-currency_sync"()',
  'DROP FUNCTION IF EXISTS "pgshift"."add-orders-currency_fwd0"(text)',
];

describe('add a NOT NULL, UNIQUE column with a default: exact SQL both ways', () => {
  const p = plan(
    `plan: add-orders-currency\ntable: public.orders\nadd: { column: currency, type: text, not_null: true, value: "lower(country)", default: "'eur'", unique: true }`,
  );
  const program = compileProgram(p, facts);

  it('expand adds the column nullable, without a default; its rollback drops it (both catalog-only)', () => {
    expect(sql(program.expand.apply)).toEqual([`ALTER TABLE ${T} ADD COLUMN IF NOT EXISTS "currency" text`]);
    expect(sql(program.expand.rollback)).toEqual([`ALTER TABLE ${T} DROP COLUMN IF EXISTS "currency"`]);
    expect(locks(program.expand.apply)).toEqual(['ACCESS EXCLUSIVE']);
  });

  it('dual-write makes the bound value function and a trigger filling the column where a write leaves it NULL; its rollback drops them', () => {
    expect(sql(program['dual-write'].apply)).toEqual(INSTALL);
    expect(locks(program['dual-write'].apply)).toEqual(['none', 'SHARE ROW EXCLUSIVE']);
    expect(sql(program['dual-write'].rollback)).toEqual(REMOVE);
    expect(locks(program['dual-write'].rollback)).toEqual(['ACCESS EXCLUSIVE', 'none']);
  });

  it('backfill fills existing rows and verifies; its rollback forgets the checkpoint', () => {
    expect(sql(program.backfill.apply)).toEqual(['-- backfill', '-- verify']);
    expect(sql(program.backfill.rollback)).toEqual(['-- reset-backfill']);
  });

  it('switch-read enforces NOT NULL through a validated CHECK and UNIQUE through a concurrent index; its rollback drops both', () => {
    expect(sql(program['switch-read'].apply)).toEqual([
      '-- verify',
      `ALTER TABLE ${T} ADD CONSTRAINT "orders_currency_pgshift_nn" CHECK ("currency" IS NOT NULL) NOT VALID`,
      `ALTER TABLE ${T} VALIDATE CONSTRAINT "orders_currency_pgshift_nn"`,
      `ALTER TABLE ${T} ALTER COLUMN "currency" SET NOT NULL`,
      `ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS "orders_currency_pgshift_nn"`,
      `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "orders_currency_pgshift_uq" ON ${T} ("currency")`,
      `ALTER TABLE ${T} ADD CONSTRAINT "orders_currency_pgshift_uq" UNIQUE USING INDEX "orders_currency_pgshift_uq"`,
    ]);
    // No statement scans the table under ACCESS EXCLUSIVE: VALIDATE and the index build take SHARE UPDATE EXCLUSIVE.
    expect(locks(program['switch-read'].apply)).toEqual([
      'ACCESS EXCLUSIVE',
      'SHARE UPDATE EXCLUSIVE',
      'ACCESS EXCLUSIVE',
      'SHARE UPDATE EXCLUSIVE',
      'ACCESS EXCLUSIVE',
    ]);
    expect(sql(program['switch-read'].rollback)).toEqual([
      `ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS "orders_currency_pgshift_uq", ALTER COLUMN "currency" DROP NOT NULL, DROP CONSTRAINT IF EXISTS "orders_currency_pgshift_nn"`,
      'DROP INDEX IF EXISTS "public"."orders_currency_pgshift_uq"',
    ]);
  });

  it("stop-write sets the default for new code's inserts; its rollback drops it", () => {
    expect(sql(program['stop-write'].apply)).toEqual([`ALTER TABLE ${T} ALTER COLUMN "currency" SET DEFAULT 'eur'`]);
    expect(sql(program['stop-write'].rollback)).toEqual([`ALTER TABLE ${T} ALTER COLUMN "currency" DROP DEFAULT`]);
  });

  it('contract drops the trigger and functions, and rolls back by installing them again: the column and its values stay', () => {
    expect(sql(program.contract.apply)).toEqual(REMOVE);
    expect(sql(program.contract.rollback)).toEqual(INSTALL);
  });

  it('the backfill rewrites only rows where the column is NULL, with the value function over the columns it reads', () => {
    const change = resolveChange(p.change, facts);
    const names = objectNames('add-orders-currency', facts);
    expect(fillNewAssignments(change, names)).toBe('"currency" = "pgshift"."add-orders-currency_fwd0"("country")');
    expect(newSideStale(change, names)).toBe('"currency" IS NULL');
    expect(differsPredicate(change, names)).toBe('"currency" IS NULL');
  });
});

describe('add a nullable column without a default', () => {
  const program = compileProgram(
    plan(`plan: add-orders-currency\ntable: public.orders\nadd: { column: currency, type: text, value: "lower(country)" }`),
    facts,
  );

  it('switch-read only verifies and stop-write does nothing, either way', () => {
    expect(sql(program['switch-read'].apply)).toEqual(['-- verify']);
    expect(program['switch-read'].rollback).toEqual([]);
    expect(program['stop-write']).toEqual({ apply: [], rollback: [] });
  });
});
