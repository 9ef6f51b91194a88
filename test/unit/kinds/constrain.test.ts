import { describe, expect, it } from 'vitest';
import { constrain } from '../../../src/changes/kinds/constrain/index.js';
import { parseReference, type ConstrainFacts } from '../../../src/changes/kinds/constrain/spec.js';
import type { PlanFacts } from '../../../src/changes/model.js';
import { compileProgram } from '../../../src/changes/program.js';
import type { Step } from '../../../src/changes/steps.js';
import { plan } from '../../helpers/fixtures.js';

const sql = (steps: readonly Step[]): string[] => steps.flatMap((s) => (s.kind === 'sql' ? s.statements : [`-- ${s.kind}`]));
const locks = (steps: readonly Step[]): string[] =>
  steps.flatMap((s) => (s.kind === 'sql' ? [s.locks ? s.locks.map((l) => `${l.table.name} ${l.mode}`).join(' + ') : s.lock] : [s.kind]));

const col = (name: string, type: string, notNull = false) => ({ name, type, notNull, default: null, collation: null, identity: false, generated: false });

/** What `learn` records for subscribers(id, email): the texts as PostgreSQL printed them at plan start. */
function factsFor(constrain: ConstrainFacts['constrain']): PlanFacts & ConstrainFacts {
  return {
    table: { schema: 'public', name: 'subscribers' },
    columns: [col('id', 'bigint', true), col('email', 'text'), col('org_id', 'bigint')],
    key: [{ name: 'id', type: 'bigint' }],
    searchPath: 'public',
    newTypes: {},
    stateSchema: 'pgshift',
    serverVersion: 180000,
    constrain,
  };
}

const FN = '"pgshift"."constrain_subscribers_email"';
const TRIGGER = '"pgshift_constrain_email"';
const T = '"public"."subscribers"';

describe('constrain not_null + check with a fix: exact SQL both ways', () => {
  const program = compileProgram(
    plan(
      `plan: constrain-subscribers-email\ntable: public.subscribers\nconstrain:\n  column: email\n  not_null: true\n  check: "email like '%@%'"\n  fix: "coalesce(email, 'unknown') || '@invalid'"`,
    ),
    factsFor({
      fix: `(COALESCE(new.email, 'unknown'::text) || '@invalid'::text)`,
      check: `(new.email ~~ '%@%'::text)`,
      checkDefinition: `CHECK ((email ~~ '%@%'::text))`,
      references: null,
    }),
  );
  const violates = `new."email" IS NULL OR ((new.email ~~ '%@%'::text)) IS FALSE`;
  const fn =
    `CREATE OR REPLACE FUNCTION ${FN}() RETURNS trigger LANGUAGE plpgsql\nSET search_path = pg_catalog, pg_temp\nAS $pgshift_body$\n` +
    `-- pgshift constrain: fix what would violate\nBEGIN\n  IF ${violates} THEN\n    new."email" := (COALESCE(new.email, 'unknown'::text) || '@invalid'::text);\n  END IF;\n  RETURN new;\nEND\n$pgshift_body$`;
  const trigger = `CREATE OR REPLACE TRIGGER ${TRIGGER} BEFORE INSERT OR UPDATE ON ${T}\nFOR EACH ROW\nEXECUTE FUNCTION ${FN}()`;
  const addChecks = [
    `ALTER TABLE ${T} ADD CONSTRAINT "subscribers_email_pgshift_nn" CHECK ("email" IS NOT NULL) NOT VALID`,
    `ALTER TABLE ${T} ADD CONSTRAINT "subscribers_email_check" CHECK ((email ~~ '%@%'::text)) NOT VALID`,
  ];
  const dropTrigger = [`DROP TRIGGER IF EXISTS ${TRIGGER} ON ${T}`, `DROP FUNCTION IF EXISTS ${FN}()`];

  it('expand does nothing either way', () => {
    expect(program.expand).toEqual({ apply: [], rollback: [] });
  });

  it('dual-write installs the fixing trigger, then adds the constraints NOT VALID; its rollback drops them all', () => {
    expect(sql(program['dual-write'].apply)).toEqual([fn, trigger, ...addChecks]);
    expect(locks(program['dual-write'].apply)).toEqual(['none', 'SHARE ROW EXCLUSIVE', 'ACCESS EXCLUSIVE', 'ACCESS EXCLUSIVE']);
    expect(sql(program['dual-write'].rollback)).toEqual([
      `ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS "subscribers_email_pgshift_nn"`,
      `ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS "subscribers_email_check"`,
      ...dropTrigger,
    ]);
  });

  it('backfill fixes violating rows in place, over the row aliased new; its rollback forgets the checkpoint', () => {
    expect(program.backfill.apply).toEqual([
      {
        kind: 'backfill',
        description: 'fix email of existing rows that would violate, in keyset batches',
        inPlace: { alias: 'new', set: `"email" = (COALESCE(new.email, 'unknown'::text) || '@invalid'::text)`, stale: `(${violates})`, columns: ['email'] },
      },
    ]);
    expect(sql(program.backfill.rollback)).toEqual(['-- reset-backfill']);
  });

  it('switch-read validates each constraint (scan under SHARE UPDATE EXCLUSIVE, no statement_timeout); nothing to roll back', () => {
    expect(sql(program['switch-read'].apply)).toEqual([
      `ALTER TABLE ${T} VALIDATE CONSTRAINT "subscribers_email_pgshift_nn"`,
      `ALTER TABLE ${T} VALIDATE CONSTRAINT "subscribers_email_check"`,
    ]);
    expect(program['switch-read'].apply.map((s) => s.kind === 'sql' && [s.lock, s.timeouts])).toEqual([
      ['SHARE UPDATE EXCLUSIVE', 'lock-only'],
      ['SHARE UPDATE EXCLUSIVE', 'lock-only'],
    ]);
    expect(program['switch-read'].rollback).toEqual([]);
  });

  it('stop-write drops the trigger; its rollback installs it again', () => {
    expect(sql(program['stop-write'].apply)).toEqual(dropTrigger);
    expect(sql(program['stop-write'].rollback)).toEqual([fn, trigger]);
  });

  it('contract sets NOT NULL from the valid check and drops it; its rollback adds and validates the check, then drops NOT NULL', () => {
    expect(sql(program.contract.apply)).toEqual([
      `ALTER TABLE ${T} ALTER COLUMN "email" SET NOT NULL`,
      `ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS "subscribers_email_pgshift_nn"`,
    ]);
    expect(sql(program.contract.rollback)).toEqual([
      addChecks[0],
      `ALTER TABLE ${T} VALIDATE CONSTRAINT "subscribers_email_pgshift_nn"`,
      `ALTER TABLE ${T} ALTER COLUMN "email" DROP NOT NULL`,
    ]);
  });
});

describe('constrain foreign_key: exact SQL of what differs', () => {
  const program = compileProgram(
    plan(
      `plan: constrain-subscribers-org\ntable: public.subscribers\nconstrain: { column: org_id, foreign_key: { references: public.orgs(id) }, fix: "null" }`,
    ),
    factsFor({ fix: 'NULL::bigint', check: null, checkDefinition: null, references: { table: { schema: 'public', name: 'orgs' }, column: 'id' } }),
  );

  it('looks the referenced row up as the owner, adds the key NOT VALID locking both tables, drops it locking both', () => {
    const [fn, , add] = program['dual-write'].apply;
    expect(sql([fn!])[0]).toContain(
      'SECURITY DEFINER\nSET search_path = pg_catalog, pg_temp\n' +
        `AS $pgshift_body$\n-- pgshift constrain: fix what would violate\nBEGIN\n` +
        `  IF (new."org_id" IS NOT NULL AND NOT EXISTS (SELECT FROM "public"."orgs" AS pgshift_ref WHERE pgshift_ref."id" OPERATOR(pg_catalog.=) new."org_id")) THEN\n` +
        `    new."org_id" := NULL::bigint;`,
    );
    expect(sql([add!])).toEqual([
      `ALTER TABLE ${T} ADD CONSTRAINT "subscribers_org_id_fkey" FOREIGN KEY ("org_id") REFERENCES "public"."orgs" ("id") NOT VALID`,
    ]);
    expect(locks([add!])).toEqual(['subscribers SHARE ROW EXCLUSIVE + orgs SHARE ROW EXCLUSIVE']);
    expect(locks(program['dual-write'].rollback)).toEqual(['subscribers ACCESS EXCLUSIVE + orgs ACCESS EXCLUSIVE', 'ACCESS EXCLUSIVE', 'none']);
  });

  it('has nothing to do at contract: the key stays', () => {
    expect(program.contract).toEqual({ apply: [], rollback: [] });
  });
});

describe('constrain without a fix', () => {
  const program = compileProgram(
    plan(`plan: constrain-subscribers-email\ntable: public.subscribers\nconstrain: { column: email, not_null: true }`),
    factsFor({ fix: null, check: null, checkDefinition: null, references: null }),
  );

  it('has no trigger and no backfill: only the constraint, validated, then NOT NULL', () => {
    expect(sql(program['dual-write'].apply)).toEqual([`ALTER TABLE ${T} ADD CONSTRAINT "subscribers_email_pgshift_nn" CHECK ("email" IS NOT NULL) NOT VALID`]);
    expect(program.backfill).toEqual({ apply: [], rollback: [] });
    expect(program['stop-write']).toEqual({ apply: [], rollback: [] });
    expect(sql(program.contract.apply)[0]).toBe(`ALTER TABLE ${T} ALTER COLUMN "email" SET NOT NULL`);
  });
});

describe('constrain in a plan file', () => {
  const parse = (body: string) => () => plan(`plan: constrain-subscribers-email\ntable: public.subscribers\nconstrain: ${body}`);

  it('refuses a plan that adds nothing (in the catalog check), a malformed reference and not_null: false, naming the field', () => {
    expect(constrain.check({ column: 'email', fix: '1' })).toEqual([
      { path: 'constrain', message: 'says nothing to add: give not_null: true, check or foreign_key' },
    ]);
    expect(parse('{ column: org_id, foreign_key: { references: orgs } }')).toThrow(/constrain\.foreign_key\.references: must be schema\.table\(column\)/);
    expect(parse('{ column: email, not_null: false }')).toThrow(/constrain\.not_null: must be true \(leave it out otherwise\)/);
  });

  it('reads a reference with quoted parts as PostgreSQL folds them', () => {
    expect(plan(`plan: p\ntable: t\nconstrain: { column: c, foreign_key: { references: 'Billing."Orgs"(ID)' } }`).change).toMatchObject({
      kind: 'constrain',
      foreign_key: { references: 'Billing."Orgs"(ID)' },
    });
    expect(parseReference('Billing."Orgs"(ID)')).toEqual({ table: { schema: 'billing', name: 'Orgs' }, column: 'id' });
  });
});
