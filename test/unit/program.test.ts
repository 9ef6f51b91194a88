import { describe, expect, it } from 'vitest';
import type { PlanFacts } from '../../src/changes/model.js';
import { compileProgram } from '../../src/changes/program.js';
import { oldCodeSetting } from '../../src/changes/old-code-mark.js';
import { PHASES } from '../../src/phases/phases.js';
import type { SqlStep, Step } from '../../src/changes/steps.js';
import { plan, RENAME_YAML, SPLIT_YAML } from '../helpers/fixtures.js';

const facts: PlanFacts = {
  table: { schema: 'public', name: 'users' },
  columns: [
    { name: 'id', type: 'bigint', notNull: true, default: "nextval('users_id_seq'::regclass)", collation: null, identity: false, generated: false },
    { name: 'full_name', type: 'text', notNull: true, default: "'anonymous'::text", collation: null, identity: false, generated: false },
    { name: 'user_name', type: 'text', notNull: false, default: null, collation: null, identity: false, generated: false },
  ],
  key: [{ name: 'id', type: 'bigint' }],
  searchPath: '"$user", public',
  newTypes: { first_name: 'text', last_name: 'text' },
  stateSchema: 'pgshift',
  serverVersion: 180000,
};

const sql = (steps: readonly Step[]): string[] => steps.flatMap((s) => (s.kind === 'sql' ? s.statements : [`-- ${s.kind}`]));
const sqlSteps = (steps: readonly Step[]): SqlStep[] => steps.filter((s): s is SqlStep => s.kind === 'sql');

describe('split: exact SQL of every phase', () => {
  const program = compileProgram(plan(SPLIT_YAML), facts);

  it('has an apply and a rollback for every phase', () => {
    for (const phase of PHASES) {
      expect(program[phase].apply.length, phase).toBeGreaterThan(0);
      expect(program[phase].rollback.length, phase).toBeGreaterThan(0);
    }
  });

  it('expand adds the new columns nullable without default, and its rollback drops them', () => {
    expect(sql(program.expand.apply)).toEqual([
      'ALTER TABLE "public"."users" ADD COLUMN IF NOT EXISTS "first_name" text, ADD COLUMN IF NOT EXISTS "last_name" text',
    ]);
    expect(sql(program.expand.rollback)).toEqual(['ALTER TABLE "public"."users" DROP COLUMN IF EXISTS "first_name", DROP COLUMN IF EXISTS "last_name"']);
  });

  it('dual-write creates inlinable functions whose parameters are the column names, then the trigger', () => {
    const [functions, trigger] = program['dual-write'].apply.map((s) => sql([s]));
    expect(functions![0]).toBe(
      'CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_fwd0"("full_name" text) RETURNS text LANGUAGE sql\n' +
        "AS $pgshift_body$ SELECT (split_part(full_name, ' ', 1))::text $pgshift_body$",
    );
    expect(functions![2]).toBe(
      'CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_rev0"("first_name" text, "last_name" text) RETURNS text LANGUAGE sql\n' +
        "AS $pgshift_body$ SELECT (concat_ws(' ', first_name, last_name))::text $pgshift_body$",
    );
    expect(functions![3]).toContain('SET search_path = "$user", public');
    expect(functions![3]).toContain('-- pgshift sync, mode two-way');
    expect(trigger).toEqual([
      'CREATE OR REPLACE TRIGGER "pgshift_split-users-full-name" BEFORE INSERT OR UPDATE ON "public"."users"\n' +
        "FOR EACH ROW WHEN (current_setting('pgshift.backfill', true) IS DISTINCT FROM 'on')\n" +
        'EXECUTE FUNCTION "pgshift"."split-users-full-name_sync"()',
    ]);
    expect(sql(program['dual-write'].rollback)).toEqual([
      'DROP TRIGGER IF EXISTS "pgshift_split-users-full-name" ON "public"."users"',
      'DROP FUNCTION IF EXISTS "pgshift"."split-users-full-name_sync"()',
      'DROP FUNCTION IF EXISTS "pgshift"."split-users-full-name_fwd0"(text)',
      'DROP FUNCTION IF EXISTS "pgshift"."split-users-full-name_fwd1"(text)',
      'DROP FUNCTION IF EXISTS "pgshift"."split-users-full-name_rev0"(text, text)',
    ]);
  });

  it('the trigger decides direction per row (a plan started before inlining: calls under a fixed search_path)', () => {
    const body = sql(program['dual-write'].apply)[3]!;
    expect(body).toContain(`IF NOT (NEW."first_name" IS NOT NULL OR NEW."last_name" IS NOT NULL) THEN`);
    expect(body).toContain(`ELSIF NEW."full_name" IS NULL THEN`);
    expect(body).toContain(
      `ELSIF (NEW."full_name" IS DISTINCT FROM OLD."full_name") AND NOT (NEW."first_name" IS DISTINCT FROM OLD."first_name" OR NEW."last_name" IS DISTINCT FROM OLD."last_name") THEN`,
    );
    expect(body).toContain(`ELSIF NEW."first_name" IS DISTINCT FROM OLD."first_name" OR NEW."last_name" IS DISTINCT FROM OLD."last_name" THEN`);
    // Its trigger's WHEN clause skips the backfill's writes, so the body does not ask.
    expect(body).not.toContain('pgshift.backfill');
    expect(body).toContain(`NEW."first_name" := "pgshift"."split-users-full-name_fwd0"(NEW."full_name");`);
  });

  const inline = {
    label: 'pgshift_expr',
    oldTypes: ['text'],
    newTypes: ['text', 'text'],
    forward: ["split_part(full_name, ' '::text, 1)", "NULLIF(substr(full_name, (strpos(full_name, ' '::text) + 1)), full_name)"],
    reverse: ["concat_ws(' '::text, first_name, last_name)"],
    oldDefaults: ["'anonymous'::text"],
    bound: true,
  };
  /** The old-code gate's statements where a client wrote the old side (see old-code-mark.ts). */
  const mark = (d: number, when = ''): string[] => {
    const p = '  '.repeat(d);
    return [
      `${p}-- pgshift old-code gate: a client wrote the old side`,
      `${p}IF ${when}current_setting('pgshift.ow_split_users_full_name', true) IS NULL THEN`,
      `${p}  PERFORM set_config('pgshift.ow_split_users_full_name', 'recorded', false);`,
      `${p}  BEGIN`,
      `${p}    PERFORM "pgshift".old_code_write('split-users-full-name');`,
      `${p}  EXCEPTION WHEN OTHERS THEN NULL;`,
      `${p}  END;`,
      `${p}END IF;`,
    ];
  };
  /** `mark` when any old column was written. */
  const markIfOld = (d: number): string[] => mark(d, '(NEW."full_name" IS NOT NULL) AND ');
  /** An insert's branches at depth `d` around the given fills (old code's insert, new code's insert, a moved row). */
  const insertLines = (d: number, fillNew: (d: number) => string[], fillOld: (d: number) => string[], keepMoved: string[]): string[] => {
    const p = '  '.repeat(d);
    return [
      `${p}IF NOT (NEW."first_name" IS NOT NULL OR NEW."last_name" IS NOT NULL) THEN`,
      `${p}  -- old code's insert`,
      ...markIfOld(d + 1),
      ...fillNew(d + 1),
      `${p}ELSIF NEW."full_name" IS NULL THEN`,
      `${p}  -- new code's insert`,
      ...fillOld(d + 1),
      `${p}ELSE`,
      ...keepMoved,
      ...markIfOld(d + 1),
      ...fillNew(d + 1),
      `${p}END IF;`,
    ];
  };
  /** An update's branches (old code's update, new code's update), the first after `first`, and the end of the body. */
  const updateLines = (first: 'IF' | 'ELSIF', fillNew: (d: number) => string[], fillOld: (d: number) => string[]): string[] => [
    `  ${first} (NEW."full_name" IS DISTINCT FROM OLD."full_name") AND NOT (NEW."first_name" IS DISTINCT FROM OLD."first_name" OR NEW."last_name" IS DISTINCT FROM OLD."last_name") THEN`,
    `    -- old code's update`,
    ...mark(2),
    ...fillNew(2),
    `  ELSIF (NEW."first_name" IS DISTINCT FROM OLD."first_name" OR NEW."last_name" IS DISTINCT FROM OLD."last_name") AND current_setting('pgshift.backfill', true) IS DISTINCT FROM 'on' THEN`,
    `    -- new code's update`,
    ...fillOld(2),
    '  END IF;',
    '  RETURN NEW;',
  ];
  /** The two-way body of one trigger for both events around the given fills. */
  const twoWay = (fillNew: (d: number) => string[], fillOld: (d: number) => string[], keepMoved: string[]): string[] => [
    `  IF TG_OP = 'INSERT' THEN`,
    ...insertLines(2, fillNew, fillOld, keepMoved),
    ...updateLines('ELSIF', fillNew, fillOld),
  ];
  /** The first lines of the inlined sync function named `<plan>_<name>`. */
  const fn = (name: string): string[] => [
    `CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_${name}"() RETURNS trigger LANGUAGE plpgsql`,
    'SET search_path = pg_catalog, pg_temp',
    'AS $pgshift_body$',
    '#variable_conflict use_column',
  ];
  const header = fn('sync');
  /** The expressions printed over NEW (`new.<column>`), and the fills they make. */
  const overNew = {
    ...inline,
    forwardOnNew: ["split_part(new.full_name, ' '::text, 1)", "NULLIF(substr(new.full_name, (strpos(new.full_name, ' '::text) + 1)), new.full_name)"],
    reverseOnNew: ["concat_ws(' '::text, new.first_name, new.last_name)"],
  };
  const fillOldOverNew = (d: number): string[] => [`${'  '.repeat(d)}NEW."full_name" := concat_ws(' '::text, new.first_name, new.last_name);`];
  const fillNewOverNew = (d: number): string[] => [
    `${'  '.repeat(d)}NEW."first_name" := split_part(new.full_name, ' '::text, 1);`,
    `${'  '.repeat(d)}NEW."last_name" := NULLIF(substr(new.full_name, (strpos(new.full_name, ' '::text) + 1)), new.full_name);`,
  ];
  /** The one-way body of one trigger for both events, up to the backfill guard around the old side's derivation. */
  const oneWayHead = [
    '-- pgshift sync, mode one-way',
    'BEGIN',
    `  IF TG_OP = 'INSERT' THEN`,
    ...markIfOld(2),
    `  ELSIF NEW."full_name" IS DISTINCT FROM OLD."full_name" THEN`,
    ...mark(2),
    '  END IF;',
    `  IF current_setting('pgshift.backfill', true) IS DISTINCT FROM 'on' THEN`,
  ];

  it('with inlined expressions the trigger calls nothing, runs under pg_catalog, pg_temp and has no WHEN clause', () => {
    const inlined = compileProgram(plan(SPLIT_YAML), { ...facts, inline });
    // The expression functions the backfill and verify call: SQL-standard bodies of the printed text, bound at CREATE
    // under the fixed search_path, with no SET clause so that they stay inlinable.
    expect(sql(inlined['dual-write'].apply).slice(0, 4)).toEqual([
      `SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)`,
      `CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_fwd0"("full_name" text) RETURNS text LANGUAGE sql\nRETURN split_part(full_name, ' '::text, 1)`,
      `CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_fwd1"("full_name" text) RETURNS text LANGUAGE sql\nRETURN NULLIF(substr(full_name, (strpos(full_name, ' '::text) + 1)), full_name)`,
      `CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_rev0"("first_name" text, "last_name" text) RETURNS text LANGUAGE sql\nRETURN concat_ws(' '::text, first_name, last_name)`,
    ]);
    // A plan started before expressions were bound (in flight across the upgrade) made its functions at dual-write
    // with bodies parsed when called, under the plan's search_path: it keeps that form.
    const before = sql(compileProgram(plan(SPLIT_YAML), { ...facts, inline: { ...inline, bound: undefined } })['dual-write'].apply);
    expect(before[0]).toBe(
      `CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_fwd0"("full_name" text) RETURNS text LANGUAGE sql\nAS $pgshift_body$ SELECT (split_part(full_name, ' ', 1))::text $pgshift_body$`,
    );
    const fillOld = (d: number): string[] => {
      const p = '  '.repeat(d);
      return [
        `${p}<<pgshift_expr>> DECLARE "first_name" text := NEW."first_name"; "last_name" text := NEW."last_name";`,
        `${p}BEGIN`,
        `${p}  NEW."full_name" := concat_ws(' '::text, first_name, last_name);`,
        `${p}END;`,
      ];
    };
    const fillNew = (d: number): string[] => {
      const p = '  '.repeat(d);
      return [
        `${p}<<pgshift_expr>> DECLARE "full_name" text := NEW."full_name";`,
        `${p}BEGIN`,
        `${p}  NEW."first_name" := split_part(full_name, ' '::text, 1);`,
        `${p}  NEW."last_name" := NULLIF(substr(full_name, (strpos(full_name, ' '::text) + 1)), full_name);`,
        `${p}END;`,
      ];
    };
    const keepMoved = [
      `      <<pgshift_expr>> DECLARE "first_name" text := NEW."first_name"; "last_name" text := NEW."last_name";`,
      '      BEGIN',
      `        IF ROW(NEW."full_name") IS NOT DISTINCT FROM ROW(concat_ws(' '::text, first_name, last_name)) THEN`,
      '          RETURN NEW;',
      '        END IF;',
      '      END;',
    ];
    expect(sql(inlined['dual-write'].apply)[4]).toBe(
      [...header, '-- pgshift sync, mode two-way', 'BEGIN', ...twoWay(fillNew, fillOld, keepMoved), 'END', '$pgshift_body$'].join('\n'),
    );
    expect(sql(inlined['dual-write'].apply)[5]).toBe(
      'CREATE OR REPLACE TRIGGER "pgshift_split-users-full-name" BEFORE INSERT OR UPDATE ON "public"."users"\nFOR EACH ROW\nEXECUTE FUNCTION "pgshift"."split-users-full-name_sync"()',
    );
    // The old column's default, as printed at start, is applied by the trigger from switch-read.
    expect(sql(inlined['switch-read'].apply)[1]).toContain(
      `      END IF;\n      IF NEW."full_name" IS NULL THEN NEW."full_name" := 'anonymous'::text; END IF;`,
    );
    expect(sql(inlined['stop-write'].apply)[1]).toContain([...oneWayHead, '    <<pgshift_expr>> DECLARE'].join('\n'));
  });

  it('with the expressions printed over NEW, the trigger needs no variables', () => {
    const inlined = compileProgram(plan(SPLIT_YAML), { ...facts, inline: overNew });
    const fillOld = fillOldOverNew;
    const fillNew = fillNewOverNew;
    const keepMoved = [
      `      IF ROW(NEW."full_name") IS NOT DISTINCT FROM ROW(concat_ws(' '::text, new.first_name, new.last_name)) THEN`,
      '        RETURN NEW;',
      '      END IF;',
    ];
    expect(sql(inlined['dual-write'].apply)[4]).toBe(
      [...header, '-- pgshift sync, mode two-way', 'BEGIN', ...twoWay(fillNew, fillOld, keepMoved), 'END', '$pgshift_body$'].join('\n'),
    );
    expect(sql(inlined['stop-write'].apply)[1]).toBe(
      [...header, ...oneWayHead, ...fillOld(2), '  END IF;', '  RETURN NEW;', 'END', '$pgshift_body$'].join('\n'),
    );
  });

  it('with one trigger per event, neither function asks TG_OP, and every phase that drops the trigger drops both', () => {
    const perEvent = compileProgram(plan(SPLIT_YAML), { ...facts, inline: { ...overNew, perEvent: true } });
    const fillOld = fillOldOverNew;
    const fillNew = fillNewOverNew;
    const dualWrite = sql(perEvent['dual-write'].apply);
    const keepMoved = [
      `    IF ROW(NEW."full_name") IS NOT DISTINCT FROM ROW(concat_ws(' '::text, new.first_name, new.last_name)) THEN`,
      '      RETURN NEW;',
      '    END IF;',
    ];
    expect(dualWrite[4]).toBe(
      [
        ...fn('sync_insert'),
        '-- pgshift sync, mode two-way',
        'BEGIN',
        ...insertLines(1, fillNew, fillOld, keepMoved),
        '  RETURN NEW;',
        'END',
        '$pgshift_body$',
      ].join('\n'),
    );
    expect(dualWrite[5]).toBe(
      [...fn('sync'), '-- pgshift sync, mode two-way', 'BEGIN', ...updateLines('IF', fillNew, fillOld), 'END', '$pgshift_body$'].join('\n'),
    );
    expect(dualWrite.slice(6)).toEqual([
      'CREATE OR REPLACE TRIGGER "pgshift_split-users-full-name_insert" BEFORE INSERT ON "public"."users"\nFOR EACH ROW\nEXECUTE FUNCTION "pgshift"."split-users-full-name_sync_insert"()',
      'CREATE OR REPLACE TRIGGER "pgshift_split-users-full-name" BEFORE UPDATE ON "public"."users"\nFOR EACH ROW\nEXECUTE FUNCTION "pgshift"."split-users-full-name_sync"()',
    ]);
    for (const text of sql(perEvent['stop-write'].apply).filter((t) => t.includes('-- pgshift sync'))) expect(text).not.toContain('TG_OP');
    // One-way: the mark shares the test that says a client wrote the old side; the backfill never inserts.
    expect(sql(perEvent['stop-write'].apply).find((t) => t.includes('_sync"()'))).toContain(
      `  IF (NEW."full_name" IS DISTINCT FROM OLD."full_name") AND current_setting('pgshift.ow_split_users_full_name', true) IS NULL THEN`,
    );
    expect(sql(perEvent['stop-write'].apply).find((t) => t.includes('_sync_insert"()'))).not.toContain('pgshift.backfill');
    const drops = [
      'DROP TRIGGER IF EXISTS "pgshift_split-users-full-name_insert" ON "public"."users"',
      'DROP TRIGGER IF EXISTS "pgshift_split-users-full-name" ON "public"."users"',
    ];
    expect(sql(perEvent['dual-write'].rollback).slice(0, 2)).toEqual(drops);
    expect(sql(perEvent['dual-write'].rollback)).toContain('DROP FUNCTION IF EXISTS "pgshift"."split-users-full-name_sync_insert"()');
    expect(sql(perEvent.contract.apply)).toEqual(expect.arrayContaining([...drops, 'DROP FUNCTION IF EXISTS "pgshift"."split-users-full-name_sync_insert"()']));
  });

  it('backfill fills and verifies; its rollback only forgets the checkpoint', () => {
    expect(sql(program.backfill.apply)).toEqual(['-- backfill', '-- verify']);
    expect(sql(program.backfill.rollback)).toEqual(['-- reset-backfill']);
  });

  it("switch-read verifies, moves the old column's default into the trigger; rollback restores it", () => {
    const apply = sql(program['switch-read'].apply);
    expect(apply[0]).toBe('-- verify');
    expect(apply[1]).toContain('-- pgshift sync, mode two-way-defaults');
    expect(apply[1]).toContain(`IF NEW."full_name" IS NULL THEN NEW."full_name" := 'anonymous'::text; END IF;`);
    expect(apply[2]).toBe('ALTER TABLE "public"."users" ALTER COLUMN "full_name" DROP DEFAULT');
    const rollback = sql(program['switch-read'].rollback);
    expect(rollback[0]).toBe(`ALTER TABLE "public"."users" ALTER COLUMN "full_name" SET DEFAULT 'anonymous'::text`);
    expect(rollback[1]).toContain('-- pgshift sync, mode two-way\n');
  });

  it('stop-write drops NOT NULL on the old column and makes the trigger one-way; rollback restores NOT NULL without a long lock', () => {
    const apply = sql(program['stop-write'].apply);
    expect(apply[0]).toBe('ALTER TABLE "public"."users" ALTER COLUMN "full_name" DROP NOT NULL');
    expect(apply[1]).toContain('-- pgshift sync, mode one-way');
    const rollback = sqlSteps(program['stop-write'].rollback);
    expect(rollback.map((s) => [s.statements.join('; '), s.lock, s.timeouts])).toEqual([
      [expect.stringContaining('mode two-way-defaults'), 'none', 'guarded'],
      ['ALTER TABLE "public"."users" ADD CONSTRAINT "users_full_name_pgshift_nn" CHECK ("full_name" IS NOT NULL) NOT VALID', 'ACCESS EXCLUSIVE', 'guarded'],
      ['ALTER TABLE "public"."users" VALIDATE CONSTRAINT "users_full_name_pgshift_nn"', 'SHARE UPDATE EXCLUSIVE', 'lock-only'],
      [
        'ALTER TABLE "public"."users" ALTER COLUMN "full_name" SET NOT NULL; ALTER TABLE "public"."users" DROP CONSTRAINT IF EXISTS "users_full_name_pgshift_nn"',
        'ACCESS EXCLUSIVE',
        'guarded',
      ],
    ]);
  });

  it('contract drops the trigger and functions and archives the old column; its rollback renames it back and refills it', () => {
    expect(sql(program.contract.apply)).toEqual([
      '-- drop-indexes',
      'DROP TRIGGER IF EXISTS "pgshift_split-users-full-name" ON "public"."users"',
      'ALTER TABLE "public"."users" RENAME COLUMN "full_name" TO "_pgshift_split-users-full-name_full_name"',
      'DROP FUNCTION IF EXISTS "pgshift"."split-users-full-name_sync"()',
      'DROP FUNCTION IF EXISTS "pgshift"."split-users-full-name_fwd0"(text)',
      'DROP FUNCTION IF EXISTS "pgshift"."split-users-full-name_fwd1"(text)',
      'DROP FUNCTION IF EXISTS "pgshift"."split-users-full-name_rev0"(text, text)',
      '-- record-archive',
    ]);
    expect(program.contract.apply.find((s) => s.kind === 'record-archive')).toMatchObject({
      columns: [{ column: 'full_name', archive: '_pgshift_split-users-full-name_full_name' }],
    });
    const back = sql(program.contract.rollback);
    expect(back.map((s) => s.split('\n')[0])).toEqual([
      'CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_fwd0"("full_name" text) RETURNS text LANGUAGE sql',
      'CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_fwd1"("full_name" text) RETURNS text LANGUAGE sql',
      'CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_rev0"("first_name" text, "last_name" text) RETURNS text LANGUAGE sql',
      'CREATE OR REPLACE FUNCTION "pgshift"."split-users-full-name_sync"() RETURNS trigger LANGUAGE plpgsql',
      'ALTER TABLE "public"."users" RENAME COLUMN "_pgshift_split-users-full-name_full_name" TO "full_name"',
      'CREATE OR REPLACE TRIGGER "pgshift_split-users-full-name" BEFORE INSERT OR UPDATE ON "public"."users"',
      '-- refill-old',
      '-- restore-indexes',
    ]);
    // The trigger comes back one-way, as stop-write left it, in the transaction that gives the column its name back.
    expect(back[3]).toContain('-- pgshift sync, mode one-way');
    expect(sqlSteps(program.contract.rollback)[1]).toMatchObject({ lock: 'ACCESS EXCLUSIVE', transaction: true, timeouts: 'guarded' });
  });

  it('runs every DDL step in a transaction under the guards', () => {
    for (const phase of PHASES) {
      for (const step of sqlSteps([...program[phase].apply, ...program[phase].rollback])) {
        expect(step.transaction, step.description).toBe(true);
        expect(['guarded', 'lock-only']).toContain(step.timeouts);
      }
    }
  });
});

describe("the old-code gate's generation in the sync functions", () => {
  /** Every statement of every phase, both ways. */
  const all = (generation: number, f: PlanFacts): string[] =>
    PHASES.flatMap((phase) => {
      const program = compileProgram(plan(SPLIT_YAML), f, generation);
      return [...sql(program[phase].apply), ...sql(program[phase].rollback)];
    });

  it('changes only the session setting name of the mark: no test, call or statement more per row', () => {
    for (const f of [
      facts,
      {
        ...facts,
        inline: {
          label: 'pgshift_expr',
          oldTypes: ['text'],
          newTypes: ['text', 'text'],
          forward: ['a', 'b'],
          reverse: ['c'],
          oldDefaults: [null],
          bound: true,
        },
      },
    ]) {
      const first = all(0, f);
      const third = all(3, f);
      expect(third).not.toEqual(first);
      expect(third.map((s) => s.replaceAll(`'pgshift.ow3_split_users_full_name'`, `'pgshift.ow_split_users_full_name'`))).toEqual(first);
      // The only lines that differ are the mark's test of the setting and its set_config.
      const changed = third.flatMap((s, i) => s.split('\n').filter((line, j) => line !== first[i]!.split('\n')[j]));
      expect(new Set(changed.map((line) => line.trim().replace(/^IF .*current_setting/, 'IF … current_setting')))).toEqual(
        new Set([
          `IF … current_setting('pgshift.ow3_split_users_full_name', true) IS NULL THEN`,
          `PERFORM set_config('pgshift.ow3_split_users_full_name', 'recorded', false);`,
        ]),
      );
    }
  });

  it('names one setting per plan and generation; generation 0 keeps the name of plans in flight before generations', () => {
    expect(oldCodeSetting('split-users-full-name')).toBe('pgshift.ow_split_users_full_name');
    expect(oldCodeSetting('split-users-full-name', 0)).toBe('pgshift.ow_split_users_full_name');
    expect(oldCodeSetting('split-users-full-name', 12)).toBe('pgshift.ow12_split_users_full_name');
    // The digits end at the first underscore, so no plan name forges another's generation.
    expect(oldCodeSetting('a', 12)).not.toBe(oldCodeSetting('2-a', 1));
    expect(oldCodeSetting('1-a', 0)).not.toBe(oldCodeSetting('a', 1));
  });
});

describe('rename: exact SQL', () => {
  const program = compileProgram(plan(RENAME_YAML), facts);

  it("expand adds the new column with the old one's type; the forward and reverse are the column itself", () => {
    expect(sql(program.expand.apply)).toEqual(['ALTER TABLE "public"."users" ADD COLUMN IF NOT EXISTS "username" text']);
    const functions = sql(program['dual-write'].apply);
    expect(functions[0]).toContain('("user_name" text) RETURNS text LANGUAGE sql\nAS $pgshift_body$ SELECT ("user_name")::text $pgshift_body$');
    expect(functions[1]).toContain('("username" text) RETURNS text LANGUAGE sql\nAS $pgshift_body$ SELECT ("username")::text $pgshift_body$');
    expect(sql(program.contract.apply)).toContain('ALTER TABLE "public"."users" RENAME COLUMN "user_name" TO "_pgshift_rename-users-user-name_user_name"');
  });

  it('every phase, both directions', () => {
    const fn = (suffix: string): string => `"pgshift"."rename-users-user-name_${suffix}"`;
    const drops = [`DROP FUNCTION IF EXISTS ${fn('sync')}()`, `DROP FUNCTION IF EXISTS ${fn('fwd0')}(text)`, `DROP FUNCTION IF EXISTS ${fn('rev0')}(text)`];
    const trigger = '"pgshift_rename-users-user-name"';
    expect(sql(program.expand.rollback)).toEqual(['ALTER TABLE "public"."users" DROP COLUMN IF EXISTS "username"']);
    expect(sql(program['dual-write'].apply).at(-1)).toContain(`CREATE OR REPLACE TRIGGER ${trigger} BEFORE INSERT OR UPDATE ON "public"."users"`);
    expect(sql(program['dual-write'].rollback)).toEqual([`DROP TRIGGER IF EXISTS ${trigger} ON "public"."users"`, ...drops]);
    expect(sql(program.backfill.apply)).toEqual(['-- backfill', '-- verify']);
    expect(sql(program.backfill.rollback)).toEqual(['-- reset-backfill']);
    // user_name has no default and no NOT NULL: switch-read only verifies and swaps the trigger function.
    expect(sql(program['switch-read'].apply).map((s) => s.split('\n')[0])).toEqual([
      '-- verify',
      `CREATE OR REPLACE FUNCTION ${fn('sync')}() RETURNS trigger LANGUAGE plpgsql`,
    ]);
    expect(sql(program['switch-read'].rollback)[0]).toContain('-- pgshift sync, mode two-way\n');
    expect(sql(program['stop-write'].apply)).toEqual([expect.stringContaining('-- pgshift sync, mode one-way')]);
    expect(sql(program['stop-write'].apply)[0]).toContain(`  NEW."user_name" := ${fn('rev0')}(NEW."username");\n  RETURN NEW;`);
    expect(sql(program['stop-write'].rollback)).toEqual([expect.stringContaining('-- pgshift sync, mode two-way-defaults')]);
    expect(sql(program.contract.apply)).toEqual([
      '-- drop-indexes',
      `DROP TRIGGER IF EXISTS ${trigger} ON "public"."users"`,
      'ALTER TABLE "public"."users" RENAME COLUMN "user_name" TO "_pgshift_rename-users-user-name_user_name"',
      ...drops,
      '-- record-archive',
    ]);
    expect(program.contract.rollback.map((s) => s.kind)).toEqual(['sql', 'sql', 'refill-old', 'restore-indexes']);
  });

  it('carries the default of a renamed column from expand, and its NOT NULL from switch-read', () => {
    const carried = compileProgram(plan('plan: r\ntable: public.users\nrename: { column: full_name, to: display_name }\n'), facts);
    expect(sql(carried.expand.apply)).toEqual([
      'ALTER TABLE "public"."users" ADD COLUMN IF NOT EXISTS "display_name" text',
      `ALTER TABLE "public"."users" ALTER COLUMN "display_name" SET DEFAULT 'anonymous'::text`,
    ]);
    expect(sql(carried['switch-read'].apply)).toContain('ALTER TABLE "public"."users" VALIDATE CONSTRAINT "users_display_name_pgshift_nn"');
    expect(sql(carried['switch-read'].rollback)).toContain(
      'ALTER TABLE "public"."users" ALTER COLUMN "display_name" DROP NOT NULL, DROP CONSTRAINT IF EXISTS "users_display_name_pgshift_nn"',
    );
  });

  it('quotes hostile names wherever it writes them', () => {
    const hostile = compileProgram(plan('plan: r\ntable: public.users\nrename: { column: user_name, to: "x\\"; DROP TABLE users; --" }\n'), facts);
    expect(sql(hostile.expand.apply)[0]).toBe('ALTER TABLE "public"."users" ADD COLUMN IF NOT EXISTS "x""; DROP TABLE users; --" text');
  });
});
