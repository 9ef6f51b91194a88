import type { ColumnConstraint, ColumnObjects } from '../db/column-objects.js';
import type { Partitioning } from '../db/partitions.js';
import { ident, literal, MAX_IDENTIFIER_BYTES, objectName, qualified, type QualifiedName } from '../db/ident.js';
import { constraintTables } from '../db/column-objects.js';
import { ddl, lockingAll, type LockMode, type SqlStep, type TableLock } from './steps.js';
import { addConstraintSafely, attachUniqueConstraint, createIndexConcurrently } from './constraints.js';
import { carryPartitionedIndexes, dropPartitionedCopies, renamePartitionCopies } from './partitioned-carry.js';

export type { CarryOver } from './carry-model.js';
import type { CarriedNames, CarryOver } from './carry-model.js';

/**
 * The name an object of `table` gets after the rename of `from` to `to`:
 * every `_`-delimited occurrence of `from` after the `<table>_` prefix is
 * replaced (`users_user_name_key` → `users_username_key`), as if PostgreSQL
 * had named it for the new column. Unchanged when the result would be too
 * long or is already taken.
 */
export function renamedObjectName(name: string, table: string, from: string, to: string, taken: ReadonlySet<string>): string {
  const prefix = name.startsWith(`${table}_`) ? `${table}_` : '';
  const escaped = from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const renamed = prefix + name.slice(prefix.length).replace(new RegExp(`(^|_)${escaped}(?=_|$)`, 'g'), (_m, sep: string) => sep + to);
  if (renamed === name || Buffer.byteLength(renamed) > MAX_IDENTIFIER_BYTES || taken.has(renamed)) return name;
  return renamed;
}

/**
 * Name the objects found on the old column. Objects on the renamed table get
 * a name with the new column in it (see `renamedObjectName`); foreign keys of
 * other tables keep theirs, as their names describe their own columns. The
 * copies live under `<final>_pgshift` until contract. `taken` holds the
 * relation names of the table's schema and the constraint names of the table.
 */
export function planCarryOver(objects: ColumnObjects, table: QualifiedName, from: string, to: string, taken: ReadonlySet<string>): CarryOver {
  const used = new Set(taken);
  const name = <T extends { name: string }>(o: T, onTable: boolean): T & CarriedNames => {
    const finalName = onTable ? renamedObjectName(o.name, table.name, from, to, used) : o.name;
    used.add(finalName);
    return { ...o, tempName: objectName(finalName, 'pgshift'), finalName };
  };
  const onTable = (t: QualifiedName): boolean => t.schema === table.schema && t.name === table.name;
  return {
    indexes: objects.indexes.map((i) => name(i, true)),
    constraints: objects.constraints.map((c) => name(c, onTable(c.table))),
    ownedSequences: objects.ownedSequences,
    comment: objects.comment,
  };
}

/**
 * switch-read: the copies on the new column, each the safe way. Indexes
 * first, since a foreign key to the new column needs its unique index; then
 * CHECKs, then foreign keys (from the new column, and to it from other
 * tables). A constraint that was NOT VALID on the old column stays so.
 */
export function carryOverSteps(carry: CarryOver, table: QualifiedName, partitioning?: Partitioning): SqlStep[] {
  const t = qualified(table);
  const indexes = partitioning
    ? carryPartitionedIndexes(carry, table, partitioning)
    : carry.indexes.flatMap((i) => [
        createIndexConcurrently(
          { schema: table.schema, name: i.tempName },
          `CREATE ${i.unique ? 'UNIQUE ' : ''}INDEX CONCURRENTLY IF NOT EXISTS ${ident(i.tempName)} ON ${t} ${i.definition}`,
          `the copy of index ${i.name}`,
        ),
        ...(i.constraint ? [attachUniqueConstraint(table, i.tempName, i.constraint.deferrable)] : []),
      ]);
  const byKind = (kind: ColumnConstraint['kind']): SqlStep[] =>
    carry.constraints
      .filter((c) => c.kind === kind)
      .flatMap((c) =>
        addConstraintSafely({ table: c.table, name: c.tempName, definition: c.definition, kind: c.kind, validate: c.validated, references: c.references }),
      );
  return [...indexes, ...byKind('check'), ...byKind('foreign-key')];
}

/**
 * Undo `carryOverSteps`: drop the copies. Dropping a constraint or an index
 * changes the catalog only, under ACCESS EXCLUSIVE held for that instant
 * (dropping a foreign key takes it on both tables, as its triggers live on
 * each). One short transaction per referencing table, those first, since
 * their foreign keys rest on the copied unique index; then the table itself.
 */
export function dropCarriedSteps(carry: CarryOver, table: QualifiedName, partitioning?: Partitioning): SqlStep[] {
  const same = (a: QualifiedName): boolean => a.schema === table.schema && a.name === table.name;
  const others = new Map<string, { table: QualifiedName; names: string[] }>();
  for (const c of carry.constraints.filter((c) => !same(c.table))) {
    const key = qualified(c.table);
    others.set(key, { table: c.table, names: [...(others.get(key)?.names ?? []), c.tempName] });
  }
  const steps = [...others.values()].map((o) =>
    lockingAll(
      ddl(`drop the copied foreign keys on ${o.table.schema}.${o.table.name} (catalog-only; locks both tables for an instant)`, 'ACCESS EXCLUSIVE', [
        `ALTER TABLE ${qualified(o.table)} ${o.names.map((n) => `DROP CONSTRAINT IF EXISTS ${ident(n)}`).join(', ')}`,
      ]),
      [table, o.table].map(exclusive),
    ),
  );
  const own = [...carry.constraints.filter((c) => same(c.table)).map((c) => c.tempName), ...carry.indexes.filter((i) => i.constraint).map((i) => i.tempName)];
  const statements = [
    ...(own.length ? [`ALTER TABLE ${qualified(table)} ${own.map((n) => `DROP CONSTRAINT IF EXISTS ${ident(n)}`).join(', ')}`] : []),
    // Also a copy never attached, or left INVALID by an interrupted build.
    ...carry.indexes.map((i) => `DROP INDEX IF EXISTS ${qualified({ schema: table.schema, name: i.tempName })}`),
    // A partitioned table: also each partition's copy never attached.
    ...(partitioning ? dropPartitionedCopies(carry, table, partitioning) : []),
  ];
  if (statements.length) {
    const tables = [table, ...carry.constraints.filter((c) => same(c.table)).flatMap(constraintTables)];
    steps.push(lockingAll(ddl('drop the copied indexes and constraints (catalog-only)', 'ACCESS EXCLUSIVE', statements), tables.map(exclusive)));
  }
  return steps;
}

function exclusive(table: QualifiedName): TableLock {
  return { table, mode: 'ACCESS EXCLUSIVE' satisfies LockMode };
}

/**
 * Every table contract's transaction locks for a rename: the table, and
 * both tables of each foreign key it drops (dropping a foreign key removes
 * its triggers from the referencing and the referenced table, under ACCESS
 * EXCLUSIVE on each).
 */
export function contractLocks(carry: CarryOver, table: QualifiedName): TableLock[] {
  return [table, ...carry.constraints.flatMap(constraintTables)].map(exclusive);
}

/**
 * contract, before the old column goes: the originals that would stop DROP
 * COLUMN (foreign keys referencing it, from any table, and the constraints
 * they rest on) are dropped, and owned sequences move to the new column.
 * All catalog-only: the ACCESS EXCLUSIVE locks they take (on this table and
 * on each referencing table) last as long as contract's one transaction, and
 * each waits at most lock_timeout. `ALTER SEQUENCE … OWNED BY` takes SHARE
 * ROW EXCLUSIVE on the sequence: nextval() waits for that instant.
 */
export function contractCarryBefore(carry: CarryOver, table: QualifiedName, newColumn: string): string[] {
  const drop = (c: { table: QualifiedName; name: string }): string => `ALTER TABLE ${qualified(c.table)} DROP CONSTRAINT IF EXISTS ${ident(c.name)}`;
  return [
    ...carry.constraints.filter((c) => c.kind === 'foreign-key').map(drop),
    ...carry.constraints.filter((c) => c.kind === 'check').map(drop),
    ...carry.indexes.filter((i) => i.constraint).map((i) => drop({ table, name: i.name })),
    ...carry.ownedSequences.map((s) => `ALTER SEQUENCE ${qualified(s)} OWNED BY ${qualified(table)}.${ident(newColumn)}`),
  ];
}

/**
 * contract, after the old column is gone: the copies take their final names.
 * `ALTER INDEX … RENAME` takes only SHARE UPDATE EXCLUSIVE on the index
 * (PostgreSQL 12+); `RENAME CONSTRAINT` takes ACCESS EXCLUSIVE on its table,
 * a catalog update held within the same short transaction.
 */
export function contractCarryAfter(carry: CarryOver, table: QualifiedName): string[] {
  return [
    ...carry.indexes.map((i) =>
      i.constraint
        ? `ALTER TABLE ${qualified(table)} RENAME CONSTRAINT ${ident(i.tempName)} TO ${ident(i.finalName)}`
        : `ALTER INDEX ${qualified({ schema: table.schema, name: i.tempName })} RENAME TO ${ident(i.finalName)}`,
    ),
    ...carry.constraints.map((c) => `ALTER TABLE ${qualified(c.table)} RENAME CONSTRAINT ${ident(c.tempName)} TO ${ident(c.finalName)}`),
    ...renamePartitionCopies(carry),
  ];
}

/**
 * contract's rollback, with the old column back under its name: the copies
 * take their names from before contract again (so the originals' names are
 * free for the indexes rebuilt from the plan's state) and owned sequences
 * move back to the old column. Renames take SHARE UPDATE EXCLUSIVE on an
 * index, ACCESS EXCLUSIVE on the table for a constraint; `OWNED BY` SHARE
 * ROW EXCLUSIVE on the sequence: catalog updates within one short
 * transaction.
 */
export function contractCarryUndo(carry: CarryOver, table: QualifiedName, oldColumn: string): string[] {
  const swap = <T extends CarriedNames>(o: T): T => ({ ...o, tempName: o.finalName, finalName: o.tempName });
  const back: CarryOver = {
    ...carry,
    indexes: carry.indexes.map((i) => ({ ...swap(i), partitions: i.partitions?.map((p) => ({ ...p, tempName: p.finalName, finalName: p.tempName })) })),
    constraints: carry.constraints.map(swap),
  };
  return [
    ...contractCarryAfter(back, table),
    ...carry.ownedSequences.map((s) => `ALTER SEQUENCE ${qualified(s)} OWNED BY ${qualified(table)}.${ident(oldColumn)}`),
  ];
}

/** expand: the column comment, carried with the definition (COMMENT ON takes SHARE UPDATE EXCLUSIVE). */
export function carryComment(carry: CarryOver | undefined, table: QualifiedName, newColumn: string): string[] {
  return carry?.comment != null ? [`COMMENT ON COLUMN ${qualified(table)}.${ident(newColumn)} IS ${literal(carry.comment)}`] : [];
}
