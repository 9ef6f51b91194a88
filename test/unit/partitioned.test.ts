import { describe, expect, it } from 'vitest';
import type { PlanFacts } from '../../src/changes/model.js';
import { compileProgram } from '../../src/changes/program.js';
import type { Step } from '../../src/changes/steps.js';
import { plan } from '../helpers/fixtures.js';

/** The exact SQL of a declared unique on a partitioned table: ON ONLY, CONCURRENTLY per leaf, attached bottom-up; and its rollback. */

const facts: PlanFacts = {
  table: { schema: 'public', name: 'people' },
  columns: [
    { name: 'id', type: 'bigint', notNull: true, default: null, collation: null, identity: false, generated: false },
    { name: 'region', type: 'text', notNull: true, default: null, collation: null, identity: false, generated: false },
    { name: 'full_name', type: 'text', notNull: false, default: null, collation: null, identity: false, generated: false },
  ],
  key: [
    { name: 'id', type: 'bigint' },
    { name: 'region', type: 'text' },
  ],
  searchPath: 'public',
  newTypes: { first_name: 'text', last_name: 'text' },
  stateSchema: 'pgshift',
  serverVersion: 180000,
  partitioning: {
    keyColumns: ['region'],
    keyHasExpressions: false,
    partitions: [
      { table: { schema: 'public', name: 'people_eu' }, parent: { schema: 'public', name: 'people' }, partitioned: false, foreign: false },
      { table: { schema: 'public', name: 'people_ap' }, parent: { schema: 'public', name: 'people' }, partitioned: true, foreign: false },
      { table: { schema: 'public', name: 'people_ap_as' }, parent: { schema: 'public', name: 'people_ap' }, partitioned: false, foreign: false },
    ],
  },
};

const YAML = `
plan: split-people
table: people
split:
  column: full_name
  into:
    - { name: first_name, type: text, using: "split_part(full_name, ' ', 1)", unique: { with: [region] } }
    - { name: last_name, type: text, using: "full_name" }
  reverse: first_name
`;

const sql = (steps: readonly Step[]): string[] => steps.flatMap((s) => (s.kind === 'sql' ? s.statements : [`-- ${s.kind}`]));

describe('declared unique on a partitioned table', () => {
  const program = compileProgram(plan(YAML), facts);

  it('switch-read: the constraint ON ONLY on each partitioned table, CONCURRENTLY on each leaf, attached bottom-up, then checked valid', () => {
    const steps = sql(program['switch-read'].apply).filter((s) => /people_\w*first_name_pgshift_uq/.test(s));
    expect(steps.filter((s) => !s.startsWith('DO '))).toEqual([
      'ALTER TABLE ONLY "public"."people" ADD CONSTRAINT "people_first_name_pgshift_uq" UNIQUE ("first_name", "region")',
      'ALTER TABLE ONLY "public"."people_ap" ADD CONSTRAINT "people_ap_first_name_pgshift_uq" UNIQUE ("first_name", "region")',
      'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "people_eu_first_name_pgshift_uq" ON "public"."people_eu" ("first_name", "region")',
      'ALTER TABLE "public"."people_eu" ADD CONSTRAINT "people_eu_first_name_pgshift_uq" UNIQUE USING INDEX "people_eu_first_name_pgshift_uq"',
      'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "people_ap_as_first_name_pgshift_uq" ON "public"."people_ap_as" ("first_name", "region")',
      'ALTER TABLE "public"."people_ap_as" ADD CONSTRAINT "people_ap_as_first_name_pgshift_uq" UNIQUE USING INDEX "people_ap_as_first_name_pgshift_uq"',
      'ALTER INDEX "public"."people_ap_first_name_pgshift_uq" ATTACH PARTITION "public"."people_ap_as_first_name_pgshift_uq"',
      'ALTER INDEX "public"."people_first_name_pgshift_uq" ATTACH PARTITION "public"."people_ap_first_name_pgshift_uq"',
      'ALTER INDEX "public"."people_first_name_pgshift_uq" ATTACH PARTITION "public"."people_eu_first_name_pgshift_uq"',
    ]);
    // No CONCURRENTLY on a partitioned table: PostgreSQL refuses it.
    expect(sql(program['switch-read'].apply).filter((s) => /CONCURRENTLY .* ON "public"\."people(_ap)?" /.test(s))).toEqual([]);
  });

  it('switch-read rollback drops the constraint, then whatever was left unattached, parents first', () => {
    expect(sql(program['switch-read'].rollback).slice(-1)[0]).toBe('DROP INDEX IF EXISTS "public"."people_ap_as_first_name_pgshift_uq"');
    const all = sql(program['switch-read'].rollback);
    expect(all).toContain('ALTER TABLE "public"."people_ap" DROP CONSTRAINT IF EXISTS "people_ap_first_name_pgshift_uq"');
    expect(all.indexOf('ALTER TABLE "public"."people" DROP CONSTRAINT IF EXISTS "people_first_name_pgshift_uq"')).toBeLessThan(
      all.indexOf('ALTER TABLE "public"."people_eu" DROP CONSTRAINT IF EXISTS "people_eu_first_name_pgshift_uq"'),
    );
  });
});

describe('unique: { with } on a plain table', () => {
  it('builds one unique index CONCURRENTLY over the new column and the named ones, then adopts it as the constraint', () => {
    const { partitioning: _, ...plain } = facts;
    const statements = sql(compileProgram(plan(YAML), plain)['switch-read'].apply).filter((s) => s.includes('pgshift_uq'));
    expect(statements).toEqual([
      'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "people_first_name_pgshift_uq" ON "public"."people" ("first_name", "region")',
      'ALTER TABLE "public"."people" ADD CONSTRAINT "people_first_name_pgshift_uq" UNIQUE USING INDEX "people_first_name_pgshift_uq"',
    ]);
  });
});
