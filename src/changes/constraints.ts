import { display, ident, literal, qualified, type QualifiedName } from '../db/ident.js';
import { constraintTables } from '../db/column-objects.js';
import { ddl, lockingAll, type SqlStep } from './steps.js';

/**
 * SET NOT NULL without a long lock. A plain `SET NOT NULL` scans the whole
 * table under ACCESS EXCLUSIVE. Instead: add `CHECK (col IS NOT NULL) NOT
 * VALID` (ACCESS EXCLUSIVE for an instant, no scan), `VALIDATE` it (SHARE
 * UPDATE EXCLUSIVE: reads and writes go on during the scan), then `SET NOT
 * NULL`, which PostgreSQL (12+) proves from the valid CHECK without a scan,
 * and drop the CHECK in the same short transaction.
 */
export function setNotNullSafely(table: QualifiedName, column: string, checkName: string): SqlStep[] {
  const t = qualified(table);
  const col = ident(column);
  return [
    ddl(
      `add CHECK (${column} IS NOT NULL) NOT VALID`,
      'ACCESS EXCLUSIVE',
      [`ALTER TABLE ${t} ADD CONSTRAINT ${checkName} CHECK (${col} IS NOT NULL) NOT VALID`],
      `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = ${literal(t)}::regclass AND conname = ${literal(unquote(checkName))})
           OR EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = ${literal(t)}::regclass AND attname = ${literal(column)} AND attnotnull) AS done`,
    ),
    {
      ...ddl(`validate the NOT NULL check on ${column} (reads and writes continue)`, 'SHARE UPDATE EXCLUSIVE', [
        `ALTER TABLE ${t} VALIDATE CONSTRAINT ${checkName}`,
      ]),
      timeouts: 'lock-only',
      skipIf: `SELECT NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = ${literal(t)}::regclass AND conname = ${literal(unquote(checkName))} AND NOT convalidated) AS done`,
    },
    ddl(`SET NOT NULL on ${column}, proven by the valid check; drop the check`, 'ACCESS EXCLUSIVE', [
      `ALTER TABLE ${t} ALTER COLUMN ${col} SET NOT NULL`,
      `ALTER TABLE ${t} DROP CONSTRAINT IF EXISTS ${checkName}`,
    ]),
  ];
}

/** `"name"` → `name` (for catalog lookups of names we quoted). */
export function unquote(quoted: string): string {
  return quoted.startsWith('"') ? quoted.slice(1, -1).replaceAll('""', '"') : quoted;
}

/** A query giving `done` = true when `index` exists and is valid (a finished build). */
function validIndexExists(index: QualifiedName): string {
  return `SELECT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(${literal(qualified(index))}) AND indisvalid) AS done`;
}

/** A query giving `done` = true when `table` has a constraint named `name`. */
export function constraintExists(table: QualifiedName, name: string): string {
  return `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(${literal(qualified(table))}) AND conname = ${literal(name)}) AS done`;
}

/**
 * Build an index without blocking writes. `CREATE INDEX CONCURRENTLY` takes
 * SHARE UPDATE EXCLUSIVE, which conflicts with no reads or writes (only with
 * other DDL, VACUUM and other concurrent builds on the table). It cannot run
 * in a transaction block, and it waits by design for every transaction that
 * could still see the table without the index, so neither lock_timeout nor
 * statement_timeout applies: a short one would cancel the build and leave an
 * INVALID index. The runner drops such a leftover before each attempt
 * (`concurrentIndex`) and logs progress while the build runs; a valid index
 * of that name means an earlier attempt finished, and the step is skipped.
 * `create` is the `CREATE [UNIQUE] INDEX CONCURRENTLY` statement.
 */
export function createIndexConcurrently(index: QualifiedName, create: string, what: string): SqlStep {
  return {
    kind: 'sql',
    description: `build ${what} CONCURRENTLY (reads and writes continue; an INVALID leftover of an interrupted build is dropped first)`,
    statements: [create],
    lock: 'SHARE UPDATE EXCLUSIVE',
    transaction: false,
    timeouts: 'none',
    skipIf: validIndexExists(index),
    concurrentIndex: index,
  };
}

/**
 * Attach a valid unique index as a UNIQUE constraint. `ADD CONSTRAINT …
 * USING INDEX` takes ACCESS EXCLUSIVE, but only for a catalog change: the
 * index is already built and proven unique, so nothing is scanned.
 */
export function attachUniqueConstraint(table: QualifiedName, name: string, deferrable: 'no' | 'immediate' | 'deferred' = 'no'): SqlStep {
  const how = deferrable === 'no' ? '' : deferrable === 'immediate' ? ' DEFERRABLE' : ' DEFERRABLE INITIALLY DEFERRED';
  return ddl(
    `attach the unique index ${name} as a UNIQUE constraint (catalog-only)`,
    'ACCESS EXCLUSIVE',
    [`ALTER TABLE ${qualified(table)} ADD CONSTRAINT ${ident(name)} UNIQUE USING INDEX ${ident(name)}${how}`],
    constraintExists(table, name),
  );
}

/**
 * UNIQUE without a long lock: a unique index built CONCURRENTLY, then
 * adopted by the constraint (catalog-only). `indexName` is quoted; `also`
 * are further columns of the constraint (`unique: { with: [...] }`).
 */
export function addUniqueSafely(table: QualifiedName, column: string, indexName: string, also: readonly string[] = []): SqlStep[] {
  const index = { schema: table.schema, name: unquote(indexName) };
  return [
    createIndexConcurrently(
      index,
      `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ${indexName} ON ${qualified(table)} (${[column, ...also].map(ident).join(', ')})`,
      `a unique index on ${column}`,
    ),
    attachUniqueConstraint(table, index.name),
  ];
}

/** A CHECK or FOREIGN KEY constraint to add without a long lock. */
export interface SafeConstraint {
  readonly table: QualifiedName;
  /** Unquoted. */
  readonly name: string;
  /** `CHECK (…)` or `FOREIGN KEY (…) REFERENCES …`, without NOT VALID. */
  readonly definition: string;
  readonly kind: 'check' | 'foreign-key';
  /** False to leave it NOT VALID (it was NOT VALID where it came from). */
  readonly validate: boolean;
  /** A foreign key's referenced table (else read from `definition`). */
  readonly references?: QualifiedName | undefined;
}

/**
 * CHECK and FOREIGN KEY without a long lock: added `NOT VALID`, which only
 * changes the catalog (new writes are checked from then on, existing rows are
 * not scanned), then `VALIDATE CONSTRAINT`, which scans under SHARE UPDATE
 * EXCLUSIVE: reads and writes go on, so only the lock wait is bounded, not
 * the scan. ADD CHECK takes ACCESS EXCLUSIVE for that instant; ADD FOREIGN
 * KEY takes SHARE ROW EXCLUSIVE on both tables (it installs triggers on
 * each), which blocks writes for that instant only; VALIDATE of a foreign
 * key also takes ROW SHARE on the referenced table.
 */
export function addConstraintSafely(c: SafeConstraint): SqlStep[] {
  const t = qualified(c.table);
  const what = `${c.kind === 'check' ? 'CHECK' : 'FOREIGN KEY'} ${c.name} on ${display(c.table)}`;
  const mode = c.kind === 'check' ? 'ACCESS EXCLUSIVE' : 'SHARE ROW EXCLUSIVE';
  return [
    lockingAll(
      ddl(
        `add ${what} NOT VALID (catalog-only: existing rows are not scanned)`,
        mode,
        [`ALTER TABLE ${t} ADD CONSTRAINT ${ident(c.name)} ${c.definition} NOT VALID`],
        constraintExists(c.table, c.name),
      ),
      constraintTables(c).map((table) => ({ table, mode })),
    ),
    ...(c.validate
      ? [
          {
            ...ddl(`validate ${what} (scans; reads and writes continue)`, 'SHARE UPDATE EXCLUSIVE', [`ALTER TABLE ${t} VALIDATE CONSTRAINT ${ident(c.name)}`]),
            timeouts: 'lock-only' as const,
            skipIf: `SELECT NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(${literal(t)}) AND conname = ${literal(c.name)} AND NOT convalidated) AS done`,
          },
        ]
      : []),
  ];
}
