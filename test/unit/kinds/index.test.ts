import { describe, expect, it } from 'vitest';
import type { IndexFacts } from '../../../src/changes/kinds/index/index.js';
import type { PlanFacts } from '../../../src/changes/model.js';
import { compileProgram } from '../../../src/changes/program.js';
import type { Step } from '../../../src/changes/steps.js';
import { PHASES } from '../../../src/phases/phases.js';
import { plan } from '../../helpers/fixtures.js';

const sql = (steps: readonly Step[]): string[] => steps.flatMap((s) => (s.kind === 'sql' ? s.statements : [`-- ${s.kind}`]));

/** What `learn` records for accounts(id, email, deleted_at): the definitions as PostgreSQL printed them. */
function factsFor(index: IndexFacts['index']): PlanFacts & IndexFacts {
  return {
    table: { schema: 'public', name: 'accounts' },
    columns: [],
    key: [{ name: 'id', type: 'bigint' }],
    searchPath: 'public',
    newTypes: {},
    stateSchema: 'pgshift',
    serverVersion: 180000,
    index,
  };
}

const NEW = { unique: true, definition: 'USING btree (lower(email)) WHERE (deleted_at IS NULL)' };
const OLD = { name: 'accounts_email_idx', unique: false, definition: 'USING btree (email)' };
const FIXED = `SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)`;
const between = PHASES.filter((p) => p !== 'expand' && p !== 'contract');

describe('index: a new index: exact SQL both ways', () => {
  const program = compileProgram(
    plan(`plan: i\ntable: public.accounts\nindex: { name: accounts_lower_idx, expression: "lower(email)", unique: true, where: "deleted_at IS NULL" }`),
    factsFor({ build: NEW, old: null }),
  );

  it('expand builds it CONCURRENTLY under the fixed search_path, from the printed definition; its rollback drops it CONCURRENTLY', () => {
    expect(program.expand.apply).toEqual([
      {
        kind: 'sql',
        description: 'build index accounts_lower_idx CONCURRENTLY (reads and writes continue; an INVALID leftover of an interrupted build is dropped first)',
        statements: [
          FIXED,
          'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "accounts_lower_idx" ON "public"."accounts" USING btree (lower(email)) WHERE (deleted_at IS NULL)',
          'RESET search_path',
        ],
        lock: 'SHARE UPDATE EXCLUSIVE',
        transaction: false,
        timeouts: 'none',
        skipIf: `SELECT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('"public"."accounts_lower_idx"') AND indisvalid) AS done`,
        concurrentIndex: { schema: 'public', name: 'accounts_lower_idx' },
      },
    ]);
    expect(program.expand.rollback).toEqual([
      {
        kind: 'sql',
        description: 'drop the new index accounts_lower_idx CONCURRENTLY (reads and writes continue; waits for transactions still using it)',
        statements: ['DROP INDEX CONCURRENTLY IF EXISTS "public"."accounts_lower_idx"'],
        lock: 'SHARE UPDATE EXCLUSIVE',
        transaction: false,
        timeouts: 'none',
        skipIf: undefined,
      },
    ]);
  });

  it('does nothing in the four phases between, nor at contract, either way', () => {
    for (const phase of [...between, 'contract' as const]) expect(program[phase], phase).toEqual({ apply: [], rollback: [] });
  });
});

describe('index: replacing an index under its own name: exact SQL both ways', () => {
  const program = compileProgram(
    plan(
      `plan: i\ntable: public.accounts\nindex: { name: accounts_email_idx, expression: "lower(email)", unique: true, where: "deleted_at IS NULL", replaces: accounts_email_idx }`,
    ),
    factsFor({ build: NEW, old: OLD }),
  );

  it('expand builds the new one under a temporary name', () => {
    expect(sql(program.expand.apply)).toEqual([
      FIXED,
      'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "accounts_email_idx_pgshift_new" ON "public"."accounts" USING btree (lower(email)) WHERE (deleted_at IS NULL)',
      'RESET search_path',
    ]);
    expect(sql(program.expand.rollback)).toEqual(['DROP INDEX CONCURRENTLY IF EXISTS "public"."accounts_email_idx_pgshift_new"']);
  });

  it('contract drops the old one CONCURRENTLY, then renames the new one; a re-run after the rename skips both', () => {
    const [drop, rename] = program.contract.apply;
    expect(sql(program.contract.apply)).toEqual([
      'DROP INDEX CONCURRENTLY IF EXISTS "public"."accounts_email_idx"',
      'ALTER INDEX "public"."accounts_email_idx_pgshift_new" RENAME TO "accounts_email_idx"',
    ]);
    const gone = `SELECT NOT pg_catalog.to_regclass('"public"."accounts_email_idx_pgshift_new"') IS NOT NULL AS done`;
    expect(drop).toMatchObject({ lock: 'SHARE UPDATE EXCLUSIVE', transaction: false, timeouts: 'none', skipIf: gone });
    expect(rename).toMatchObject({
      description:
        'rename index public.accounts_email_idx_pgshift_new to accounts_email_idx (catalog-only; SHARE UPDATE EXCLUSIVE on the index alone, no lock on the table)',
      lock: 'none',
      transaction: true,
      timeouts: 'guarded',
      skipIf: gone,
    });
  });

  it("contract's rollback hands the name back and builds the old index again, as recorded", () => {
    expect(sql(program.contract.rollback)).toEqual([
      'ALTER INDEX "public"."accounts_email_idx" RENAME TO "accounts_email_idx_pgshift_new"',
      FIXED,
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS "accounts_email_idx" ON "public"."accounts" USING btree (email)',
      'RESET search_path',
    ]);
    expect(program.contract.rollback[0]).toMatchObject({
      skipIf: `SELECT pg_catalog.to_regclass('"public"."accounts_email_idx_pgshift_new"') IS NOT NULL OR NOT pg_catalog.to_regclass('"public"."accounts_email_idx"') IS NOT NULL AS done`,
    });
  });

  it('does nothing in the four phases between', () => {
    for (const phase of between) expect(program[phase], phase).toEqual({ apply: [], rollback: [] });
  });
});

describe('index: replacing an index under another name, and dropping one', () => {
  it('contract drops the replaced index, with no rename; its rollback builds it again', () => {
    const program = compileProgram(
      plan(`plan: i\ntable: public.accounts\nindex: { name: accounts_lower_idx, expression: "lower(email)", replaces: accounts_email_idx }`),
      factsFor({ build: { unique: false, definition: 'USING btree (lower(email))' }, old: OLD }),
    );
    expect(sql(program.expand.apply)[1]).toBe('CREATE INDEX CONCURRENTLY IF NOT EXISTS "accounts_lower_idx" ON "public"."accounts" USING btree (lower(email))');
    expect(sql(program.contract.apply)).toEqual(['DROP INDEX CONCURRENTLY IF EXISTS "public"."accounts_email_idx"']);
    expect(program.contract.apply[0]).toMatchObject({ skipIf: undefined });
    expect(sql(program.contract.rollback)).toEqual([
      FIXED,
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS "accounts_email_idx" ON "public"."accounts" USING btree (email)',
      'RESET search_path',
    ]);
  });

  it('a drop does nothing before contract, drops the index CONCURRENTLY there, and builds it again on rollback', () => {
    const program = compileProgram(
      plan(`plan: i\ntable: public.accounts\nindex: { name: accounts_email_idx, drop: true }`),
      factsFor({ build: null, old: OLD }),
    );
    for (const phase of PHASES.filter((p) => p !== 'contract')) expect(program[phase], phase).toEqual({ apply: [], rollback: [] });
    expect(sql(program.contract.apply)).toEqual(['DROP INDEX CONCURRENTLY IF EXISTS "public"."accounts_email_idx"']);
    expect(sql(program.contract.rollback)).toEqual([
      FIXED,
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS "accounts_email_idx" ON "public"."accounts" USING btree (email)',
      'RESET search_path',
    ]);
  });
});
