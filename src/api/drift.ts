import type { ColumnChange, PlanFacts } from '../changes/model.js';
import { syncTriggers, type ObjectNames } from '../changes/sql-objects.js';
import { unquote } from '../changes/constraints.js';
import type { Client } from '../db/client.js';
import { ident, qualified } from '../db/ident.js';
import { ExitCode, PgshiftError } from '../errors.js';
import { PHASES, phaseIndex, previousPhase, type Phase } from '../phases/phases.js';
import type { PhaseProgram } from '../changes/steps.js';
import type { PlanState } from '../state/store.js';

/** One object that is not as the plan's phase says it should be. */
export interface DriftProblem {
  /** The object, e.g. `trigger "pgshift_rename-a"`, `index "users_email_pgshift_uq"`. */
  readonly object: string;
  readonly problem: 'missing' | 'unexpected' | 'wrong mode';
  /** What should be: e.g. `dual-write makes it`, `mode two-way`. */
  readonly expected: string;
  readonly message: string;
}

/** A plan's objects are not what its phase should have. Exit 2. */
export class DriftError extends PgshiftError {
  readonly exitCode = ExitCode.invalidInput;
  constructor(
    readonly plan: string,
    readonly phase: Phase | null,
    readonly problems: readonly DriftProblem[],
  ) {
    super(
      `plan "${plan}" has drifted from what ${phase ?? 'no phase'} should have: ${problems.map((p) => p.message).join('; ')}. ` +
        'Put the objects back as the phase made them (migrate plan show prints its SQL) or remove what came early, ' +
        'or pass --force to move the plan anyway (recorded in migrate plan log).',
    );
  }
}

/** An object a plan makes or removes, with the phases the compiled program does it in. */
interface Expectation {
  readonly object: string;
  /** Index of the phase whose apply makes it; -1 when it was there before the plan. */
  readonly from: number;
  /** Index of the phase whose apply removes it; null when nothing does. */
  readonly until: number | null;
  /** SQL giving one boolean column `present`. */
  readonly probe: string;
}

const apply = (program: PhaseProgram, phase: Phase): string[] => program[phase].apply.flatMap((step) => (step.kind === 'sql' ? step.statements : []));

/** The index of the first phase whose apply SQL contains `text`, or null. */
function firstMention(program: PhaseProgram, text: string): number | null {
  const i = PHASES.findIndex((p) => apply(program, p).some((s) => s.includes(text)));
  return i < 0 ? null : i;
}

/**
 * What each object's life is, read from the compiled phase program itself
 * (the phase whose SQL adds a column, creates the trigger or a function,
 * builds an index, sets or drops NOT NULL and defaults), so this stays true
 * when the program changes. Objects the program never makes are left out.
 */
function expectations(program: PhaseProgram, change: ColumnChange, names: ObjectNames, facts: PlanFacts): Expectation[] {
  const t = qualified(facts.table);
  const lit = (v: string): string => `'${v.replaceAll("'", "''")}'`;
  const attr = (column: string, what: string): string =>
    `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(${lit(t)}) AND attname = ${lit(column)} AND attnum > 0 AND NOT attisdropped AND ${what}) AS present`;
  const out: Expectation[] = [];
  const add = (object: string, from: number | null, until: number | null, probe: string): void => {
    if (from !== null) out.push({ object, from, until, probe });
  };
  const col = (c: string): string => `ALTER COLUMN ${ident(c)}`;
  for (const c of change.new) {
    add(
      `column ${ident(c.name)}`,
      firstMention(program, `ADD COLUMN IF NOT EXISTS ${ident(c.name)}`),
      firstMention(program, `DROP COLUMN IF EXISTS ${ident(c.name)}`),
      attr(c.name, 'true'),
    );
    add(`NOT NULL on ${ident(c.name)}`, firstMention(program, `${col(c.name)} SET NOT NULL`), null, attr(c.name, 'attnotnull'));
    add(`default on ${ident(c.name)}`, firstMention(program, `${col(c.name)} SET DEFAULT`), null, attr(c.name, 'atthasdef'));
    if (c.unique) {
      const index = names.uniqueIndex(c.name);
      add(`index ${index}`, firstMention(program, index), null, `SELECT to_regclass(${lit(`${ident(facts.table.schema)}.${index}`)}) IS NOT NULL AS present`);
    }
  }
  // contract archives an old column (renames it aside) where it used to drop it: either removes its name.
  const dropped = (c: string): number | null =>
    firstMention(program, `DROP COLUMN IF EXISTS ${ident(c)}`) ?? firstMention(program, `RENAME COLUMN ${ident(c)} TO `);
  for (const c of change.old) {
    add(`column ${ident(c.name)}`, -1, dropped(c.name), attr(c.name, 'true'));
    if (c.notNull)
      add(`NOT NULL on ${ident(c.name)}`, -1, firstMention(program, `${col(c.name)} DROP NOT NULL`) ?? dropped(c.name), attr(c.name, 'attnotnull'));
    if (c.default !== null)
      add(`default on ${ident(c.name)}`, -1, firstMention(program, `${col(c.name)} DROP DEFAULT`) ?? dropped(c.name), attr(c.name, 'atthasdef'));
  }
  for (const { trigger } of syncTriggers(names, facts)) {
    add(
      `trigger ${trigger}`,
      firstMention(program, `CREATE OR REPLACE TRIGGER ${trigger} `),
      firstMention(program, `DROP TRIGGER IF EXISTS ${trigger} `),
      `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(${lit(t)}) AND tgname = ${lit(unquote(trigger))}) AS present`,
    );
  }
  // Every function the program drops is one it made: its signature is in the DROP.
  const drops = PHASES.flatMap((p) => apply(program, p)).flatMap((s) => /^DROP FUNCTION IF EXISTS (.+)$/.exec(s)?.[1] ?? []);
  for (const signature of new Set(drops)) {
    const name = signature.slice(0, signature.lastIndexOf('('));
    add(
      `function ${signature}`,
      firstMention(program, `CREATE OR REPLACE FUNCTION ${name}(`),
      firstMention(program, `DROP FUNCTION IF EXISTS ${signature}`),
      `SELECT to_regprocedure(${lit(signature)}) IS NOT NULL AS present`,
    );
  }
  return out;
}

/** The sync trigger's mode each phase leaves, read from the program's `-- pgshift sync, mode …` lines. */
function modeAt(program: PhaseProgram, at: number): string | null {
  let mode: string | null = null;
  for (const p of PHASES.slice(0, at + 1)) {
    for (const s of apply(program, p)) {
      const m = /-- pgshift sync, mode (\S+)/.exec(s);
      if (m) mode = m[1]!;
    }
  }
  return mode;
}

/**
 * Compare the catalog with what the plan's phase should have: every object
 * of the phases applied so far present, none of a later phase yet, and the
 * sync trigger in the phase's mode. A phase left unfinished (failed, or its
 * runner killed) may have done part of its work: what either end of it
 * would have is accepted. Rolled-back and complete-by-metadata plans have
 * nothing to compare.
 */
export async function findDrift(client: Client, state: PlanState, program: PhaseProgram, change: ColumnChange, names: ObjectNames): Promise<DriftProblem[]> {
  if (state.status === 'rolled_back' || state.facts.retype?.metadataOnly) return [];
  const at = phaseIndex(state.phase);
  const unfinished = state.unfinishedPhase;
  const alt = unfinished === null ? at : state.unfinishedAction === 'apply' ? phaseIndex(unfinished) : phaseIndex(previousPhase(unfinished));
  const ends = [...new Set([at, alt])];
  const problems: DriftProblem[] = [];
  const phaseName = (i: number): string => PHASES[i] ?? 'the plan';
  for (const e of expectations(program, change, names, state.facts)) {
    const wanted = ends.map((i) => e.from <= i && (e.until === null || i < e.until));
    const { rows } = await client.query<{ present: boolean }>(e.probe);
    const present = rows[0]!.present;
    if (!present && wanted.every(Boolean)) {
      problems.push({
        object: e.object,
        problem: 'missing',
        expected: `${phaseName(e.from)} makes it`,
        message: `${e.object} is missing (${e.from < 0 ? 'it was there before the plan' : `${phaseName(e.from)} makes it`})`,
      });
    } else if (present && !wanted.some(Boolean)) {
      const early = e.from > Math.max(...ends);
      const expected = early ? `${phaseName(e.from)} makes it` : `${phaseName(e.until!)} removes it`;
      problems.push({ object: e.object, problem: 'unexpected', expected, message: `${e.object} exists, but ${expected}` });
    }
  }
  const modes = [...new Set(ends.map((i) => modeAt(program, i)))];
  for (const { trigger, fn } of syncTriggers(names, state.facts)) {
    const sync = (
      await client.query<{ mode: string | null }>(
        `SELECT substring(prosrc from '-- pgshift sync, mode (\\S+)') AS mode FROM pg_proc WHERE oid = to_regprocedure($1)`,
        [`${fn}()`],
      )
    ).rows[0];
    if (sync && !modes.includes(sync.mode) && !modes.includes(null)) {
      problems.push({
        object: `function ${fn}()`,
        problem: 'wrong mode',
        expected: `mode ${modes.join(' or ')}`,
        message: `the sync trigger function ${fn}() is in mode ${sync.mode ?? 'unknown'}, but ${phaseName(at)} leaves it ${modes.join(' or ')}`,
      });
    }
    const disabled = (
      await client.query<{ disabled: boolean }>(`SELECT tgenabled = 'D' AS disabled FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2`, [
        qualified(state.facts.table),
        unquote(trigger),
      ])
    ).rows[0];
    if (disabled?.disabled) {
      problems.push({
        object: `trigger ${trigger}`,
        problem: 'wrong mode',
        expected: 'enabled',
        message: `trigger ${trigger} is disabled: writes of either side are no longer synced`,
      });
    }
  }
  return problems;
}
