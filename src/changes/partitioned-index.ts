import { display, ident, literal, qualified, type QualifiedName } from '../db/ident.js';
import type { PartitionNode } from '../db/partitions.js';
import { ddl, type SqlStep } from './steps.js';
import { attachUniqueConstraint, createIndexConcurrently } from './constraints.js';

/**
 * An index to build on a partitioned table and on every partition below it.
 * PostgreSQL refuses `CREATE INDEX CONCURRENTLY` on a partitioned table, so it
 * is built the way its documentation describes for partition maintenance:
 * the index on the partitioned table `ON ONLY` (catalog-only, INVALID), each
 * leaf partition's index CONCURRENTLY, then `ALTER INDEX … ATTACH PARTITION`
 * for each; the partitioned index becomes valid once every partition's index
 * is attached.
 */
export interface PartitionedIndex {
  /** The index on the partitioned table, unquoted, in the table's schema. */
  readonly name: string;
  readonly unique: boolean;
  /** Everything after `ON <table>`: `USING btree (…) …`. */
  readonly definition: string;
  /**
   * Set when the index backs a UNIQUE constraint. `ADD CONSTRAINT … USING
   * INDEX` is refused on partitioned tables, so those get the constraint by
   * `ALTER TABLE ONLY … ADD CONSTRAINT … UNIQUE (…)` (catalog-only: the
   * index it creates is INVALID and empty), while each leaf adopts its
   * concurrently built index with `USING INDEX`, as on a plain table.
   */
  readonly constraint: { readonly definition: string; readonly deferrable: 'no' | 'immediate' | 'deferred' } | null;
  /** The index's name on each partition (unquoted, in the partition's schema). */
  readonly partitionName: (partition: QualifiedName) => string;
}

const deferrableSql = (d: 'no' | 'immediate' | 'deferred'): string => (d === 'no' ? '' : d === 'immediate' ? ' DEFERRABLE' : ' DEFERRABLE INITIALLY DEFERRED');

/** The index's name on `table` (the partitioned table itself, or a partition). */
function indexOn(root: QualifiedName, index: PartitionedIndex, table: QualifiedName): QualifiedName {
  const isRoot = table.schema === root.schema && table.name === root.name;
  return { schema: table.schema, name: isRoot ? index.name : index.partitionName(table) };
}

/**
 * switch-read: build `index` on the partitioned table `root` without a long
 * lock. Locks, per statement (read from the docs and seen in `pg_locks`):
 * - `CREATE INDEX … ON ONLY` takes SHARE on that partitioned table only (not
 *   its partitions) for a catalog change: writes wait at most lock_timeout;
 *   `ALTER TABLE ONLY … ADD CONSTRAINT … UNIQUE` takes ACCESS EXCLUSIVE on
 *   that partitioned table only, likewise catalog-only.
 * - `CREATE INDEX CONCURRENTLY` on a leaf takes SHARE UPDATE EXCLUSIVE on it:
 *   reads and writes go on.
 * - `ADD CONSTRAINT … USING INDEX` on a leaf: ACCESS EXCLUSIVE on that leaf,
 *   catalog-only.
 * - `ALTER INDEX … ATTACH PARTITION` takes SHARE UPDATE EXCLUSIVE on the
 *   parent index, ACCESS SHARE on both tables and ACCESS EXCLUSIVE on the
 *   partition's index (new, so only planning of queries on that partition
 *   waits for the instant): catalog-only.
 * Every step is idempotent: it is skipped when its object exists (valid, for
 * a concurrent build) or is already attached.
 */
export function buildPartitionedIndex(root: QualifiedName, partitions: readonly PartitionNode[], index: PartitionedIndex, what: string): SqlStep[] {
  const partitionedTables = [root, ...partitions.filter((p) => p.partitioned).map((p) => p.table)];
  const exists = (i: QualifiedName): string => `SELECT to_regclass(${literal(qualified(i))}) IS NOT NULL AS done`;
  const onOnly = partitionedTables.map((t) => {
    const i = indexOn(root, index, t);
    return index.constraint
      ? ddl(
          `add ${what} on ${display(t)} ONLY (catalog-only: its index is INVALID until every partition's is attached)`,
          'ACCESS EXCLUSIVE',
          [`ALTER TABLE ONLY ${qualified(t)} ADD CONSTRAINT ${ident(i.name)} ${index.constraint.definition}${deferrableSql(index.constraint.deferrable)}`],
          exists(i),
        )
      : ddl(
          `create ${what} on ${display(t)} ONLY (catalog-only: INVALID until every partition's index is attached)`,
          'SHARE',
          [`CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX IF NOT EXISTS ${ident(i.name)} ON ONLY ${qualified(t)} ${index.definition}`],
          exists(i),
        );
  });
  const leaves = partitions
    .filter((p) => !p.partitioned)
    .flatMap((p) => {
      const i = indexOn(root, index, p.table);
      return [
        createIndexConcurrently(
          i,
          `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX CONCURRENTLY IF NOT EXISTS ${ident(i.name)} ON ${qualified(p.table)} ${index.definition}`,
          `${what} on partition ${display(p.table)}`,
        ),
        ...(index.constraint ? [attachUniqueConstraint(p.table, i.name, index.constraint.deferrable)] : []),
      ];
    });
  // Bottom-up, so a sub-partitioned table's index is complete when it is attached.
  const attach = [...partitions].reverse().map((p) => {
    const parent = indexOn(root, index, p.parent);
    const child = indexOn(root, index, p.table);
    return ddl(
      `attach ${what} of ${display(p.table)} to ${display(parent)} (catalog-only)`,
      'ACCESS SHARE',
      [`ALTER INDEX ${qualified(parent)} ATTACH PARTITION ${qualified(child)}`],
      `SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(${literal(qualified(child))})) AS done`,
    );
  });
  const top = indexOn(root, index, root);
  // A partition attached or created after the plan started is not in `partitions`: name it, and say how to finish by hand.
  const howTo =
    `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX CONCURRENTLY <name> ON <partition> ${index.definition}` +
    (index.constraint ? `; ALTER TABLE <partition> ADD CONSTRAINT <name> UNIQUE USING INDEX <name>` : '') +
    `; ALTER INDEX <index of its parent> ATTACH PARTITION <name>`;
  const check = ddl(
    `check that ${what} on ${display(root)} is valid (every partition's index attached)`,
    'none',
    [
      `DO $pgshift$ DECLARE missing text; BEGIN
  SELECT string_agg(t.relid::regclass::text, ', ' ORDER BY t.relid::regclass::text) INTO missing
    FROM pg_partition_tree(${literal(qualified(root))}::regclass) t
   WHERE t.level > 0 AND NOT EXISTS (SELECT 1 FROM pg_partition_tree(${literal(qualified(top))}::regclass) i
                                      JOIN pg_index x ON x.indexrelid = i.relid WHERE x.indrelid = t.relid);
  RAISE EXCEPTION '%', ${literal(`index ${display(top)} on partitioned table ${display(root)} is not valid: no index is attached for partition(s) `)}
    || coalesce(missing, '?') || ${literal(` (added after the plan started?). For each: ${howTo}; then apply again, or roll back switch-read`)};
END $pgshift$`,
    ],
    `SELECT coalesce((SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(${literal(qualified(top))})), false) AS done`,
  );
  return [...onOnly, ...leaves, ...attach, check];
}

/**
 * Undo `buildPartitionedIndex`, as statements for one short transaction:
 * dropping the partitioned index (or its constraint) drops every attached
 * partition's index with it; what was built but never attached (an
 * interrupted switch-read) is dropped one by one, parents first. All
 * catalog-only, under ACCESS EXCLUSIVE on each table for that instant.
 */
export function dropPartitionedIndex(root: QualifiedName, partitions: readonly PartitionNode[], index: PartitionedIndex): string[] {
  const tables = [root, ...partitions.filter((p) => !p.foreign).map((p) => p.table)];
  return [
    ...(index.constraint ? tables.map((t) => `ALTER TABLE ${qualified(t)} DROP CONSTRAINT IF EXISTS ${ident(indexOn(root, index, t).name)}`) : []),
    ...tables.map((t) => `DROP INDEX IF EXISTS ${qualified(indexOn(root, index, t))}`),
  ];
}
