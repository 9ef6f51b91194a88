import { ident, literal, qualified, type QualifiedName } from '../db/ident.js';
import { ddl, type SqlStep } from '../runner/steps.js';

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

/**
 * UNIQUE without a long lock: the index is built CONCURRENTLY (outside a
 * transaction, without timeouts, as it waits for older snapshots), a leftover
 * INVALID index from an interrupted build is dropped first, then the
 * constraint adopts the index, which is a catalog-only change.
 */
export function addUniqueSafely(table: QualifiedName, column: string, indexName: string): SqlStep[] {
  const t = qualified(table);
  const idx = qualified({ schema: table.schema, name: unquote(indexName) });
  const indexState = (valid: boolean): string =>
    `SELECT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(${literal(idx)}) AND indisvalid = ${valid})`;
  return [
    {
      kind: 'sql',
      description: `drop an INVALID leftover of the unique index on ${column}`,
      statements: [`DROP INDEX CONCURRENTLY IF EXISTS ${idx}`],
      lock: 'SHARE UPDATE EXCLUSIVE',
      transaction: false,
      timeouts: 'none',
      skipIf: `SELECT NOT (${indexState(false)}) AS done`,
    },
    {
      kind: 'sql',
      description: `build a unique index on ${column} CONCURRENTLY (reads and writes continue)`,
      statements: [`CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ${indexName} ON ${t} (${ident(column)})`],
      lock: 'SHARE UPDATE EXCLUSIVE',
      transaction: false,
      timeouts: 'none',
    },
    ddl(
      `attach the unique index on ${column} as a constraint`,
      'ACCESS EXCLUSIVE',
      [`ALTER TABLE ${t} ADD CONSTRAINT ${indexName} UNIQUE USING INDEX ${indexName}`],
      `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = ${literal(t)}::regclass AND conname = ${literal(unquote(indexName))}) AS done`,
    ),
  ];
}
