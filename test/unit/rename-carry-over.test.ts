import { describe, expect, it } from 'vitest';
import { planCarryOver, renamedObjectName } from '../../src/changes/carry-over.js';
import type { PlanFacts } from '../../src/changes/model.js';
import { compileProgram } from '../../src/changes/program.js';
import { splitTopLevel, type ColumnObjects } from '../../src/db/column-objects.js';
import type { DropIndexesStep, SqlStep, Step } from '../../src/changes/steps.js';
import { plan, RENAME_YAML } from '../helpers/fixtures.js';

const objects: ColumnObjects = {
  indexes: [
    { name: 'users_user_name_key', unique: true, definition: 'USING "btree" ("username" pg_catalog.text_ops)', constraint: { deferrable: 'no' } },
    {
      name: 'users_lower_user_name_idx',
      unique: true,
      definition: 'USING "btree" ((lower(username)) COLLATE pg_catalog."default" pg_catalog.text_ops)',
      constraint: null,
    },
    { name: 'by_login', unique: false, definition: 'USING "btree" ("username" pg_catalog.text_ops) WHERE active', constraint: null },
  ],
  constraints: [
    { kind: 'check', table: { schema: 'public', name: 'users' }, name: 'users_user_name_check', definition: 'CHECK ((length(username) > 0))', validated: true },
    {
      kind: 'foreign-key',
      table: { schema: 'public', name: 'users' },
      name: 'users_user_name_fkey',
      definition: 'FOREIGN KEY ("username") REFERENCES "public"."accounts" ("login")',
      validated: true,
      direction: 'from',
    },
    {
      kind: 'foreign-key',
      table: { schema: 'shop', name: 'orders' },
      name: 'orders_user_name_fkey',
      definition: 'FOREIGN KEY ("user_name") REFERENCES "public"."users" ("username")',
      validated: false,
      direction: 'to',
    },
  ],
  ownedSequences: [{ schema: 'public', name: 'users_user_name_seq' }],
  comment: "the user's login",
  unsupported: [],
};

const facts: PlanFacts = {
  table: { schema: 'public', name: 'users' },
  columns: [
    { name: 'id', type: 'bigint', notNull: true, default: null, collation: null, identity: false, generated: false },
    { name: 'user_name', type: 'text', notNull: true, default: "'anon'::text", collation: null, identity: false, generated: false },
  ],
  key: [{ name: 'id', type: 'bigint' }],
  searchPath: 'public',
  newTypes: {},
  stateSchema: 'pgshift',
  serverVersion: 180000,
  carry: planCarryOver(objects, { schema: 'public', name: 'users' }, 'user_name', 'username', new Set(['users', 'users_pkey', 'by_login'])),
};

const sql = (steps: readonly Step[]): string[] => steps.flatMap((s) => (s.kind === 'sql' ? s.statements : [`-- ${s.kind}`]));
const program = compileProgram(plan(RENAME_YAML), facts);

describe('rename carry-over: exact SQL', () => {
  it('names the copies after the new column, keeping names that do not contain the old one or belong to other tables', () => {
    expect(facts.carry!.indexes.map((i) => [i.name, i.tempName, i.finalName])).toEqual([
      ['users_user_name_key', 'users_username_key_pgshift', 'users_username_key'],
      ['users_lower_user_name_idx', 'users_lower_username_idx_pgshift', 'users_lower_username_idx'],
      ['by_login', 'by_login_pgshift', 'by_login'],
    ]);
    expect(facts.carry!.constraints.map((c) => c.finalName)).toEqual(['users_username_check', 'users_username_fkey', 'orders_user_name_fkey']);
  });

  it('expand carries type, default and comment', () => {
    expect(sql(program.expand.apply)).toEqual([
      'ALTER TABLE "public"."users" ADD COLUMN IF NOT EXISTS "username" text',
      `ALTER TABLE "public"."users" ALTER COLUMN "username" SET DEFAULT 'anon'::text`,
      `COMMENT ON COLUMN "public"."users"."username" IS 'the user''s login'`,
    ]);
  });

  it('switch-read builds indexes CONCURRENTLY outside transactions, then CHECKs and foreign keys NOT VALID + VALIDATE', () => {
    const steps = program['switch-read'].apply.filter((s): s is SqlStep => s.kind === 'sql');
    const carried = steps.slice(3, -2); // after NOT NULL's three steps, before the trigger update and the old default's move
    expect(carried.map((s) => [s.statements, s.lock, s.transaction, s.timeouts])).toEqual([
      [
        ['CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_username_key_pgshift" ON "public"."users" USING "btree" ("username" pg_catalog.text_ops)'],
        'SHARE UPDATE EXCLUSIVE',
        false,
        'none',
      ],
      [
        ['ALTER TABLE "public"."users" ADD CONSTRAINT "users_username_key_pgshift" UNIQUE USING INDEX "users_username_key_pgshift"'],
        'ACCESS EXCLUSIVE',
        true,
        'guarded',
      ],
      [
        [
          'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_lower_username_idx_pgshift" ON "public"."users" USING "btree" ((lower(username)) COLLATE pg_catalog."default" pg_catalog.text_ops)',
        ],
        'SHARE UPDATE EXCLUSIVE',
        false,
        'none',
      ],
      [
        ['CREATE INDEX CONCURRENTLY IF NOT EXISTS "by_login_pgshift" ON "public"."users" USING "btree" ("username" pg_catalog.text_ops) WHERE active'],
        'SHARE UPDATE EXCLUSIVE',
        false,
        'none',
      ],
      [
        ['ALTER TABLE "public"."users" ADD CONSTRAINT "users_username_check_pgshift" CHECK ((length(username) > 0)) NOT VALID'],
        'ACCESS EXCLUSIVE',
        true,
        'guarded',
      ],
      [['ALTER TABLE "public"."users" VALIDATE CONSTRAINT "users_username_check_pgshift"'], 'SHARE UPDATE EXCLUSIVE', true, 'lock-only'],
      [
        [
          'ALTER TABLE "public"."users" ADD CONSTRAINT "users_username_fkey_pgshift" FOREIGN KEY ("username") REFERENCES "public"."accounts" ("login") NOT VALID',
        ],
        'SHARE ROW EXCLUSIVE',
        true,
        'guarded',
      ],
      [['ALTER TABLE "public"."users" VALIDATE CONSTRAINT "users_username_fkey_pgshift"'], 'SHARE UPDATE EXCLUSIVE', true, 'lock-only'],
      // It was NOT VALID on the old column: it stays so.
      [
        [
          'ALTER TABLE "shop"."orders" ADD CONSTRAINT "orders_user_name_fkey_pgshift" FOREIGN KEY ("user_name") REFERENCES "public"."users" ("username") NOT VALID',
        ],
        'SHARE ROW EXCLUSIVE',
        true,
        'guarded',
      ],
    ]);
    expect(carried[0]!.concurrentIndex).toEqual({ schema: 'public', name: 'users_username_key_pgshift' });
  });

  it('switch-read rollback drops the copies, other tables first, then what it enforced', () => {
    expect(sql(program['switch-read'].rollback).slice(2)).toEqual([
      'ALTER TABLE "shop"."orders" DROP CONSTRAINT IF EXISTS "orders_user_name_fkey_pgshift"',
      'ALTER TABLE "public"."users" DROP CONSTRAINT IF EXISTS "users_username_check_pgshift", DROP CONSTRAINT IF EXISTS "users_username_fkey_pgshift", DROP CONSTRAINT IF EXISTS "users_username_key_pgshift"',
      'DROP INDEX IF EXISTS "public"."users_username_key_pgshift"',
      'DROP INDEX IF EXISTS "public"."users_lower_username_idx_pgshift"',
      'DROP INDEX IF EXISTS "public"."by_login_pgshift"',
      'ALTER TABLE "public"."users" ALTER COLUMN "username" DROP NOT NULL, DROP CONSTRAINT IF EXISTS "users_username_pgshift_nn"',
    ]);
  });

  it('contract drops the originals and archives the column in one transaction, then the copies take their final names', () => {
    const [drop, step] = program.contract.apply as [DropIndexesStep, SqlStep];
    // First the plain indexes on the old column go CONCURRENTLY, outside the transaction.
    expect(drop).toMatchObject({ kind: 'drop-indexes', table: { schema: 'public', name: 'users' }, columns: ['user_name'] });
    expect(step!.statements).toEqual([
      'DROP TRIGGER IF EXISTS "pgshift_rename-users-user-name" ON "public"."users"',
      'ALTER TABLE "public"."users" DROP CONSTRAINT IF EXISTS "users_user_name_fkey"',
      'ALTER TABLE "shop"."orders" DROP CONSTRAINT IF EXISTS "orders_user_name_fkey"',
      'ALTER TABLE "public"."users" DROP CONSTRAINT IF EXISTS "users_user_name_check"',
      'ALTER TABLE "public"."users" DROP CONSTRAINT IF EXISTS "users_user_name_key"',
      'ALTER SEQUENCE "public"."users_user_name_seq" OWNED BY "public"."users"."username"',
      // Dropped CONCURRENTLY by the step before; on a partitioned table, here (their copies take their names below).
      'DROP INDEX IF EXISTS "public"."users_lower_user_name_idx"',
      'DROP INDEX IF EXISTS "public"."by_login"',
      'ALTER TABLE "public"."users" RENAME COLUMN "user_name" TO "_pgshift_rename-users-user-name_user_name"',
      'ALTER TABLE "public"."users" RENAME CONSTRAINT "users_username_key_pgshift" TO "users_username_key"',
      'ALTER INDEX "public"."users_lower_username_idx_pgshift" RENAME TO "users_lower_username_idx"',
      'ALTER INDEX "public"."by_login_pgshift" RENAME TO "by_login"',
      'ALTER TABLE "public"."users" RENAME CONSTRAINT "users_username_check_pgshift" TO "users_username_check"',
      'ALTER TABLE "public"."users" RENAME CONSTRAINT "users_username_fkey_pgshift" TO "users_username_fkey"',
      'ALTER TABLE "shop"."orders" RENAME CONSTRAINT "orders_user_name_fkey_pgshift" TO "orders_user_name_fkey"',
    ]);
    expect(step!.skipIf).toContain(`attname IN ('user_name')`);
    // Its rollback does not build the dropped constraints again: refused, naming them.
    expect(program.contract.rollback).toEqual([
      {
        kind: 'refuse',
        description:
          "contract dropped users_user_name_check, users_user_name_fkey, orders_user_name_fkey, users_user_name_key with user_name's name, which its rollback does not build again",
      },
    ]);
  });

  it('rolls contract back where only plain indexes were carried: copies renamed back, sequence owned by the old column again', () => {
    const plain = { ...facts, carry: { ...facts.carry!, constraints: [], indexes: facts.carry!.indexes.filter((i) => !i.constraint) } };
    const back = compileProgram(plan(RENAME_YAML), plain).contract.rollback;
    expect(back.map((s) => s.kind)).toEqual(['sql', 'sql', 'refill-old', 'restore-indexes']);
    expect((back[1] as SqlStep).statements.filter((s) => !s.startsWith('CREATE OR REPLACE TRIGGER'))).toEqual([
      'ALTER TABLE "public"."users" RENAME COLUMN "_pgshift_rename-users-user-name_user_name" TO "user_name"',
      'ALTER INDEX "public"."users_lower_username_idx" RENAME TO "users_lower_username_idx_pgshift"',
      'ALTER INDEX "public"."by_login" RENAME TO "by_login_pgshift"',
      'ALTER SEQUENCE "public"."users_user_name_seq" OWNED BY "public"."users"."user_name"',
    ]);
  });

  it('compiles as before for a plan started without carry-over facts', () => {
    const { carry: _carry, ...old } = facts;
    const bare = compileProgram(plan(RENAME_YAML), old);
    expect(sql(bare.contract.apply)[2]).toBe('ALTER TABLE "public"."users" RENAME COLUMN "user_name" TO "_pgshift_rename-users-user-name_user_name"');
  });
});

describe('renamedObjectName', () => {
  it('replaces whole name parts after the table prefix only', () => {
    const none = new Set<string>();
    expect(renamedObjectName('users_user_name_key', 'users', 'user_name', 'username', none)).toBe('users_username_key');
    expect(renamedObjectName('t_a_idx', 't', 'a', 'b', none)).toBe('t_b_idx');
    expect(renamedObjectName('a_a_a_key', 'a_a', 'a', 'b', none)).toBe('a_a_b_key');
    expect(renamedObjectName('users_nickname_idx', 'users', 'name', 'login', none)).toBe('users_nickname_idx');
    expect(renamedObjectName('users_user_name_key', 'users', 'user_name', 'username', new Set(['users_username_key']))).toBe('users_user_name_key');
    expect(renamedObjectName(`users_c_${'x'.repeat(50)}`, 'users', 'c', 'c'.repeat(20), none)).toBe(`users_c_${'x'.repeat(50)}`);
  });
});

describe('splitTopLevel', () => {
  it('splits an expression list at top-level commas only', () => {
    expect(splitTopLevel(`lower(a), upper(b)`)).toEqual(['lower(a)', 'upper(b)']);
    expect(splitTopLevel(`COALESCE(a, 'x, y'::text), (ARRAY[1, 2])[1], "we,ird"`)).toEqual([`COALESCE(a, 'x, y'::text)`, '(ARRAY[1, 2])[1]', '"we,ird"']);
    expect(splitTopLevel(`'it''s, here'`)).toEqual([`'it''s, here'`]);
  });
});
