import { describe, expect, it } from 'vitest';
import type { PlanFacts } from '../../src/changes/model.js';
import { compileProgram } from '../../src/changes/program.js';
import { archivedBy, purgeSteps } from '../../src/changes/archive.js';
import { PHASES } from '../../src/phases/phases.js';
import type { SqlStep, Step } from '../../src/changes/steps.js';
import { plan } from '../helpers/fixtures.js';

const sql = (steps: readonly Step[]): string[] => steps.flatMap((s) => (s.kind === 'sql' ? s.statements : [`-- ${s.kind}`]));

const base = {
  key: [{ name: 'id', type: 'bigint' }],
  searchPath: 'public',
  stateSchema: 'pgshift',
  serverVersion: 180000,
} as const;
const col = (name: string, type: string, notNull = false, def: string | null = null) => ({
  name,
  type,
  notNull,
  default: def,
  collation: null,
  identity: false,
  generated: false,
});

describe('merge street + city → address: exact SQL both ways', () => {
  const p = plan(`
plan: merge-address
table: people
merge:
  columns: [street, city]
  into: { name: address, type: text, using: "concat_ws(', ', street, city)", not_null: true, unique: true, default: "''" }
  reverse: { street: "split_part(address, ', ', 1)", city: "split_part(address, ', ', 2)" }`);
  const facts: PlanFacts = {
    ...base,
    table: { schema: 'public', name: 'people' },
    columns: [col('id', 'bigint', true), col('street', 'text', true), col('city', 'text', true, "'Paris'::text")],
    newTypes: { address: 'text' },
  };
  const program = compileProgram(p, facts);

  it('expand adds one column; its rollback drops it', () => {
    expect(sql(program.expand.apply)).toEqual(['ALTER TABLE "public"."people" ADD COLUMN IF NOT EXISTS "address" text']);
    expect(sql(program.expand.rollback)).toEqual(['ALTER TABLE "public"."people" DROP COLUMN IF EXISTS "address"']);
  });

  it('dual-write: one forward function over both old columns, one reverse function per old column', () => {
    const [functions] = program['dual-write'].apply.map((s) => sql([s]));
    expect(functions!.slice(0, 3)).toEqual([
      'CREATE OR REPLACE FUNCTION "pgshift"."merge-address_fwd0"("street" text, "city" text) RETURNS text LANGUAGE sql\n' +
        "AS $pgshift_body$ SELECT (concat_ws(', ', street, city))::text $pgshift_body$",
      'CREATE OR REPLACE FUNCTION "pgshift"."merge-address_rev0"("address" text) RETURNS text LANGUAGE sql\n' +
        "AS $pgshift_body$ SELECT (split_part(address, ', ', 1))::text $pgshift_body$",
      'CREATE OR REPLACE FUNCTION "pgshift"."merge-address_rev1"("address" text) RETURNS text LANGUAGE sql\n' +
        "AS $pgshift_body$ SELECT (split_part(address, ', ', 2))::text $pgshift_body$",
    ]);
    expect(sql(program['dual-write'].rollback)).toEqual([
      'DROP TRIGGER IF EXISTS "pgshift_merge-address" ON "public"."people"',
      'DROP FUNCTION IF EXISTS "pgshift"."merge-address_sync"()',
      'DROP FUNCTION IF EXISTS "pgshift"."merge-address_fwd0"(text, text)',
      'DROP FUNCTION IF EXISTS "pgshift"."merge-address_rev0"(text)',
      'DROP FUNCTION IF EXISTS "pgshift"."merge-address_rev1"(text)',
    ]);
  });

  it('switch-read enforces default, NOT NULL and UNIQUE the safe way; its rollback drops them in one catalog-only step', () => {
    const apply = program['switch-read'].apply;
    expect(sql(apply).slice(0, 8)).toEqual([
      '-- verify',
      `ALTER TABLE "public"."people" ALTER COLUMN "address" SET DEFAULT ''`,
      'ALTER TABLE "public"."people" ADD CONSTRAINT "people_address_pgshift_nn" CHECK ("address" IS NOT NULL) NOT VALID',
      'ALTER TABLE "public"."people" VALIDATE CONSTRAINT "people_address_pgshift_nn"',
      'ALTER TABLE "public"."people" ALTER COLUMN "address" SET NOT NULL',
      'ALTER TABLE "public"."people" DROP CONSTRAINT IF EXISTS "people_address_pgshift_nn"',
      'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "people_address_pgshift_uq" ON "public"."people" ("address")',
      'ALTER TABLE "public"."people" ADD CONSTRAINT "people_address_pgshift_uq" UNIQUE USING INDEX "people_address_pgshift_uq"',
    ]);
    const build = apply.find((s): s is SqlStep => s.kind === 'sql' && s.statements[0]!.startsWith('CREATE UNIQUE'))!;
    expect(build).toMatchObject({ transaction: false, timeouts: 'none', concurrentIndex: { schema: 'public', name: 'people_address_pgshift_uq' } });
    expect(sql(program['switch-read'].rollback).slice(-2)).toEqual([
      'ALTER TABLE "public"."people" DROP CONSTRAINT IF EXISTS "people_address_pgshift_uq", ALTER COLUMN "address" DROP NOT NULL, DROP CONSTRAINT IF EXISTS "people_address_pgshift_nn", ALTER COLUMN "address" DROP DEFAULT',
      'DROP INDEX IF EXISTS "public"."people_address_pgshift_uq"',
    ]);
  });

  it('stop-write drops NOT NULL of both old columns; its rollback sets them again safely', () => {
    expect(sql(program['stop-write'].apply)[0]).toBe('ALTER TABLE "public"."people" ALTER COLUMN "street" DROP NOT NULL, ALTER COLUMN "city" DROP NOT NULL');
    expect(sql(program['stop-write'].rollback).filter((s) => s.includes('SET NOT NULL'))).toEqual([
      'ALTER TABLE "public"."people" ALTER COLUMN "street" SET NOT NULL',
      'ALTER TABLE "public"."people" ALTER COLUMN "city" SET NOT NULL',
    ]);
  });

  it('contract archives both old columns in one transaction; purge drops them', () => {
    expect(sql(program.contract.apply).slice(2, 4)).toEqual([
      'ALTER TABLE "public"."people" RENAME COLUMN "street" TO "_pgshift_merge-address_street"',
      'ALTER TABLE "public"."people" RENAME COLUMN "city" TO "_pgshift_merge-address_city"',
    ]);
    expect(sql(purgeSteps(facts.table, archivedBy(program)))).toEqual([
      'ALTER TABLE "public"."people" DROP COLUMN IF EXISTS "_pgshift_merge-address_street", DROP COLUMN IF EXISTS "_pgshift_merge-address_city"',
    ]);
  });
});

describe('retype: exact SQL both ways', () => {
  const p = plan(`
plan: retype-price
table: products
retype: { column: price, to: "numeric(10,2)", using: "price::numeric(10,2)", reverse: "price::text" }`);
  const facts: PlanFacts = {
    ...base,
    table: { schema: 'public', name: 'products' },
    columns: [col('id', 'bigint', true), col('price', 'text', true, "'0'::text")],
    newTypes: { price_new: 'numeric(10,2)' },
    retype: { metadataOnly: false, reverseMetadataOnly: false, reason: 'the cast rewrites' },
  };
  const program = compileProgram(p, facts);

  it('adds <column>_new, and both expressions name the column by its own name', () => {
    expect(sql(program.expand.apply)).toEqual(['ALTER TABLE "public"."products" ADD COLUMN IF NOT EXISTS "price_new" numeric(10,2)']);
    const [functions] = program['dual-write'].apply.map((s) => sql([s]));
    expect(functions!.slice(0, 2)).toEqual([
      'CREATE OR REPLACE FUNCTION "pgshift"."retype-price_fwd0"("price" text) RETURNS numeric(10,2) LANGUAGE sql\n' +
        'AS $pgshift_body$ SELECT (price::numeric(10,2))::numeric(10,2) $pgshift_body$',
      'CREATE OR REPLACE FUNCTION "pgshift"."retype-price_rev0"("price" numeric(10,2)) RETURNS text LANGUAGE sql\n' +
        'AS $pgshift_body$ SELECT (price::text)::text $pgshift_body$',
    ]);
    expect(functions![2]).toContain('NEW."price_new" := "pgshift"."retype-price_fwd0"(NEW."price")');
    expect(functions![2]).toContain('NEW."price" := "pgshift"."retype-price_rev0"(NEW."price_new")');
  });

  it('carries NOT NULL to the new column in switch-read, and drops it on rollback', () => {
    expect(sql(program['switch-read'].apply)).toContain('ALTER TABLE "public"."products" ALTER COLUMN "price_new" SET NOT NULL');
    expect(sql(program['switch-read'].rollback)).toContain(
      'ALTER TABLE "public"."products" ALTER COLUMN "price_new" DROP NOT NULL, DROP CONSTRAINT IF EXISTS "products_price_new_pgshift_nn"',
    );
  });

  it('contract archives the old column; the new one keeps its name', () => {
    expect(sql(program.contract.apply)[2]).toBe('ALTER TABLE "public"."products" RENAME COLUMN "price" TO "_pgshift_retype-price_price"');
  });

  it('in place when the probe found no rewrite: one ALTER in expand, nothing elsewhere', () => {
    const inPlace = compileProgram(
      plan(`
plan: retype-body
table: notes
retype: { column: body, to: text, using: "body::text", reverse: "body::varchar(50)" }`),
      {
        ...base,
        table: { schema: 'public', name: 'notes' },
        columns: [col('id', 'bigint', true), col('body', 'character varying(50)', true)],
        newTypes: { body_new: 'text' },
        retype: { metadataOnly: true, reverseMetadataOnly: true, reason: '' },
      },
    );
    expect(sql(inPlace.expand.apply)).toEqual(['ALTER TABLE "public"."notes" ALTER COLUMN "body" TYPE text USING (body::text)']);
    expect(sql(inPlace.expand.rollback)).toEqual(['ALTER TABLE "public"."notes" ALTER COLUMN "body" TYPE character varying(50) USING (body::varchar(50))']);
    expect((inPlace.expand.apply[0] as SqlStep).skipIf).toContain(`format_type(atttypid, atttypmod) = 'text'`);
    for (const phase of PHASES.filter((ph) => ph !== 'expand')) expect(inPlace[phase]).toEqual({ apply: [], rollback: [] });
  });
});
