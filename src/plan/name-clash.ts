import { unquote } from '../changes/constraints.js';
import type { PlanFacts } from '../changes/model.js';
import { compileProgram } from '../changes/program.js';
import { archivedBy } from '../changes/archive.js';
import { objectNames, syncTriggers } from '../changes/sql-objects.js';
import type { Client } from '../db/client.js';
import { display, functionSignatureSql, qualified } from '../db/ident.js';
import { PlanError, type PlanProblem } from '../errors.js';
import type { Phase } from '../phases/phases.js';
import type { Plan } from './types.js';

/** A quoted, optionally schema-qualified name as `qualified()` and `ident()` print it. */
const NAME = String.raw`(?:"(?:[^"]|"")*"\.)?"(?:[^"]|"")*"`;
const FUNCTION = new RegExp(String.raw`^CREATE OR REPLACE FUNCTION (${NAME})\(`);
const INDEX = new RegExp(String.raw`^CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?("(?:[^"]|"")*") ON (?:ONLY )?(${NAME})`);

/**
 * Objects named like those `phases` of a plan create, that the plan did not
 * make: pgshift's statements would replace them (`CREATE OR REPLACE
 * TRIGGER`, `CREATE OR REPLACE FUNCTION`, which keeps the old owner) or
 * silently keep them (`CREATE INDEX … IF NOT EXISTS`, later attached as the
 * plan's own). The names are read from the compiled program itself, as drift
 * reads them (api/drift.ts), so there is no second list to keep in step:
 *
 * - a trigger of a sync trigger's name on the table whose function is not
 *   the plan's sync function;
 * - a function of a name the program creates (any arguments) that is not
 *   owned by the runner (`current_user`, exactly: for a superuser every
 *   role's membership holds);
 * - a relation of an index's name that is not an index on the table the
 *   program builds it on, or any, before the plan has started;
 * - a column of an archive name contract would rename an old column to.
 *
 * `action` `rollback` reads what the phases' rollbacks create instead
 * (contract's rollback creates the functions and the trigger again).
 *
 * Reads the catalog only.
 */
export async function nameClashes(
  client: Client,
  plan: Plan,
  facts: PlanFacts,
  phases: readonly Phase[],
  started: boolean,
  action: 'apply' | 'rollback' = 'apply',
): Promise<PlanProblem[]> {
  const program = compileProgram(plan, facts);
  // A rollback that creates objects again (contract's: the functions and the trigger) is checked as an apply is.
  const statements = phases.flatMap((p) => program[p][action].flatMap((step) => (step.kind === 'sql' ? step.statements : [])));
  const problems: string[] = [];
  const table = qualified(facts.table);

  for (const { trigger, fn } of syncTriggers(objectNames(plan.name, facts), facts)) {
    if (!statements.some((s) => s.startsWith(`CREATE OR REPLACE TRIGGER ${trigger} `))) continue;
    const { rows } = await client.query<{ fn: string; owner: string }>(
      `SELECT ${functionSignatureSql('t.tgfoid')} AS fn, f.proowner::regrole::text AS owner
         FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc f ON f.oid = t.tgfoid
        WHERE t.tgrelid = pg_catalog.to_regclass($1) AND t.tgname = $2 AND t.tgfoid IS DISTINCT FROM pg_catalog.to_regprocedure($3)`,
      [table, unquote(trigger), `${fn}()`],
    );
    for (const r of rows) problems.push(`trigger ${trigger} on ${display(facts.table)} exists and is not pgshift's (it runs ${r.fn}, owned by "${r.owner}")`);
  }

  const functions = new Set(statements.flatMap((s) => FUNCTION.exec(s)?.[1] ?? []));
  for (const name of functions) {
    const { rows } = await client.query<{ fn: string; owner: string }>(
      `SELECT ${functionSignatureSql('p.oid')} AS fn, p.proowner::regrole::text AS owner
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace, pg_catalog.parse_ident($1) AS q(parts)
        WHERE n.nspname = q.parts[1] AND p.proname = q.parts[2]
          AND p.proowner <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER)
        ORDER BY 1`,
      [name],
    );
    for (const r of rows) problems.push(`function ${r.fn} exists and is owned by "${r.owner}", not by the runner`);
  }

  const indexes = new Map(
    statements.flatMap((s): [string, string][] => {
      const m = INDEX.exec(s);
      return m ? [[m[1]!, m[2]!]] : [];
    }),
  );
  for (const [index, on] of indexes) {
    const { rows } = await client.query<{ kind: string; owner: string; on: string | null }>(
      `SELECT c.relkind::text AS kind, c.relowner::regrole::text AS owner, (SELECT pg_catalog.quote_ident(x_n.nspname) || '.' || pg_catalog.quote_ident(x.relname) FROM pg_catalog.pg_class x JOIN pg_catalog.pg_namespace x_n ON x_n.oid = x.relnamespace WHERE x.oid = i.indrelid) AS on
         FROM pg_catalog.parse_ident($2) AS t(parts)
         JOIN pg_catalog.pg_namespace n ON n.nspname = t.parts[1]
         JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = $1
         LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
        WHERE pg_catalog.cardinality(t.parts) = 2
          AND ($3 OR i.indrelid IS DISTINCT FROM pg_catalog.to_regclass($2))`,
      [unquote(index), on, !started],
    );
    for (const r of rows)
      problems.push(
        `${r.kind === 'i' ? `index on ${r.on}` : `relation (relkind ${r.kind})`} ${index} exists, owned by "${r.owner}", and this plan did not make it`,
      );
  }

  // An archive name already a column: contract would fail on its RENAME COLUMN (a column left by another plan, or the user's).
  if (action === 'apply' && phases.includes('contract')) {
    for (const c of archivedBy(program)) {
      const { rows } = await client.query<{ old: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute o WHERE o.attrelid = a.attrelid AND o.attname = $3 AND NOT o.attisdropped) AS old
           FROM pg_catalog.pg_attribute a WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped`,
        [table, c.archive, c.column],
      );
      // Archived by this plan already (the old column is gone) is a contract half done, not a clash.
      if (rows[0] && (rows[0].old || !started))
        problems.push(`column "${c.archive}" of ${display(facts.table)} exists, the name contract archives "${c.column}" under`);
    }
  }

  return problems.map((what) => ({
    file: plan.file,
    path: '',
    message:
      `${what}: ${phases.join(', ')} would create an object of that name and replace or take it over. ` +
      'Nothing was changed. Rename or drop that object (or give the plan another name), then run again',
  }));
}

/** Refuse (exit 2, before any change) a plan whose objects' names are taken; see {@link nameClashes}. */
export async function refuseNameClashes(client: Client, plan: Plan, facts: PlanFacts, phases: readonly Phase[], started: boolean): Promise<void> {
  const problems = await nameClashes(client, plan, facts, phases, started);
  if (problems.length) throw new PlanError(problems);
}
