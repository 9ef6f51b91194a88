import { display, ident, literal, qualified, type QualifiedName } from '../../../db/ident.js';
import { createIndexConcurrently } from '../../constraints.js';
import { ddl, emptyProgram, type PhaseProgram, type SqlStep } from '../../steps.js';
import type { IndexDefinition } from './catalog.js';

/**
 * The build runs the definition PostgreSQL printed at plan start (names
 * outside pg_catalog qualified) under `pg_catalog, pg_temp`, so that what
 * the author's unqualified names meant then is what is built, whatever the
 * runner's search_path holds now; the session's path is reset after.
 * CONCURRENTLY cannot run in a transaction block, so SET LOCAL is no option.
 */
const FIXED_PATH = `SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)`;
const RESET_PATH = 'RESET search_path';

/** Build `def` as `index` CONCURRENTLY (see `createIndexConcurrently`: SHARE UPDATE EXCLUSIVE, no timeouts, INVALID leftovers dropped first). */
function build(table: QualifiedName, index: QualifiedName, def: IndexDefinition, what: string): SqlStep {
  const step = createIndexConcurrently(
    index,
    `CREATE ${def.unique ? 'UNIQUE ' : ''}INDEX CONCURRENTLY IF NOT EXISTS ${ident(index.name)} ON ${qualified(table)} ${def.definition}`,
    what,
  );
  return { ...step, statements: [FIXED_PATH, ...step.statements, RESET_PATH] };
}

/**
 * `DROP INDEX CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE on the table and
 * the index, which no read or write conflicts with (only DDL, VACUUM and
 * other concurrent index builds on the table), then waits for every
 * transaction that could still use the index before it marks it dead and
 * removes it, so it blocks nobody: it waits instead. It cannot run in a
 * transaction block, and a lock_timeout or statement_timeout could cut it
 * half-way, leaving an INVALID index; so it runs without them, like the
 * build, and `IF EXISTS` finishes such a leftover on the next run.
 */
function dropConcurrently(index: QualifiedName, what: string, skipIf?: string): SqlStep {
  return {
    kind: 'sql',
    description: `drop ${what} CONCURRENTLY (reads and writes continue; waits for transactions still using it)`,
    statements: [`DROP INDEX CONCURRENTLY IF EXISTS ${qualified(index)}`],
    lock: 'SHARE UPDATE EXCLUSIVE',
    transaction: false,
    timeouts: 'none',
    skipIf,
  };
}

/**
 * `ALTER INDEX … RENAME` takes SHARE UPDATE EXCLUSIVE on the index alone
 * (checked in pg_locks on every major the suite runs, by
 * test/db/index-kind.test.ts) and no lock on its table: reads and writes,
 * which take ACCESS SHARE or ROW EXCLUSIVE on the index, go on; only DDL on
 * that index waits. It changes the catalog only. Under the plan's
 * lock_timeout, so it never queues long behind other DDL.
 */
function rename(index: QualifiedName, to: string, skipIf: string): SqlStep {
  return {
    ...ddl(`rename index ${display(index)} to ${to} (catalog-only; SHARE UPDATE EXCLUSIVE on the index alone, no lock on the table)`, 'none', [
      `ALTER INDEX ${qualified(index)} RENAME TO ${ident(to)}`,
    ]),
    skipIf,
  };
}

const exists = (index: QualifiedName): string => `pg_catalog.to_regclass(${literal(qualified(index))}) IS NOT NULL`;

/**
 * The index kind's phases. expand builds the new index (under a temporary
 * name when it takes the name of the index it replaces); contract drops the
 * replaced index (or, for a drop, the index named) and gives the new one its
 * name. Each rolls back: expand's by dropping what it built, contract's by
 * building the old index again from its definition recorded at plan start
 * (CONCURRENTLY) after handing the name back. Nothing between them: old and
 * new code differ in no column, only in the plans their queries get.
 */
export function indexProgram(
  table: QualifiedName,
  name: string,
  buildName: string,
  facts: { readonly build: IndexDefinition | null; readonly old: (IndexDefinition & { readonly name: string }) | null },
): PhaseProgram {
  const program = emptyProgram();
  const at = (n: string): QualifiedName => ({ schema: table.schema, name: n });
  const target = at(buildName);
  const swapped = buildName !== name;
  if (facts.build) {
    program.expand = {
      apply: [build(table, target, facts.build, `index ${name}${swapped ? ` as ${buildName}` : ''}`)],
      rollback: [dropConcurrently(target, `the new index ${buildName}`)],
    };
  }
  if (facts.old) {
    const old = at(facts.old.name);
    program.contract = {
      apply: [
        // When the new index is to take the old one's name, a re-run after the rename must not drop the new one under that name.
        dropConcurrently(old, `the replaced index ${facts.old.name}`, swapped ? `SELECT NOT ${exists(target)} AS done` : undefined),
        ...(swapped ? [rename(target, name, `SELECT NOT ${exists(target)} AS done`)] : []),
      ],
      rollback: [
        // Hand the name back first (skipped when contract stopped before the rename: the name is still the old index's).
        ...(swapped ? [rename(at(name), buildName, `SELECT ${exists(target)} OR NOT ${exists(at(name))} AS done`)] : []),
        build(table, old, facts.old, `the replaced index ${facts.old.name} again, as recorded at plan start`),
      ],
    };
  }
  return program;
}
