import type { CarryOver } from '../../carry-over.js';
import { renamedObjectName } from '../../carry-over.js';
import type { CarriedIndex, PartitionCopyNames } from '../../partitioned-carry.js';
import type { Client } from '../../../db/client.js';
import type { ColumnObjects } from '../../../db/column-objects.js';
import { display, objectName, qualified, type QualifiedName } from '../../../db/ident.js';
import type { Partitioning } from '../../../db/partitions.js';

/**
 * What a rename cannot carry on a partitioned table, each with advice that
 * works: objects a partition has on its own (an index not attached to one of
 * the partitioned table's, a constraint not inherited from it), which
 * contract's DROP COLUMN would take along silently; foreign partitions,
 * which PostgreSQL cannot index; and, before PostgreSQL 18, a foreign key
 * from the column, since `ADD FOREIGN KEY … NOT VALID` is refused on a
 * partitioned table there and a plain one would block writes while it scans.
 */
export async function partitionRenameProblems(
  client: Client,
  table: QualifiedName,
  partitioning: Partitioning,
  column: string,
  found: ColumnObjects,
): Promise<string[]> {
  const problems: string[] = [];
  const partitions = partitioning.partitions.map((p) => qualified(p.table));
  const foreign = partitioning.partitions.filter((p) => p.foreign);
  if (foreign.length && found.indexes.length) {
    problems.push(
      `${display(table)} has foreign-table partitions (${foreign.map((p) => display(p.table)).join(', ')}), on which PostgreSQL cannot build the copies of the indexes on "${column}": ` +
        `detach them for the plan (ALTER TABLE … DETACH PARTITION … CONCURRENTLY) and attach them again after contract`,
    );
  }
  const local = await client.query<{ what: string; kind: string }>(
    `SELECT pg_catalog.format('index %s on partition %s', c.relname, i.indrelid::regclass) AS what, 'index' AS kind
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = $2
      WHERE i.indrelid = ANY ($1::regclass[])
        AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
        AND (a.attnum = ANY (i.indkey::int2[])
             OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                          AND d.refobjid = i.indrelid AND d.refobjsubid = a.attnum))
     UNION ALL
     SELECT pg_catalog.format('constraint %s on partition %s', k.conname, k.conrelid::regclass), 'constraint'
       FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attname = $2
      WHERE k.conrelid = ANY ($1::regclass[]) AND k.conparentid = 0 AND k.coninhcount = 0 AND k.contype <> 'n'
        AND a.attnum = ANY (k.conkey)
     ORDER BY 1`,
    [partitions, column],
  );
  for (const l of local.rows) {
    problems.push(
      `column "${column}" is used by ${l.what}, which the partition has on its own (pgshift carries what is defined on ${display(table)}): ` +
        (l.kind === 'index'
          ? `drop it (DROP INDEX CONCURRENTLY) and create it again on the new column after contract, or create it on ${display(table)} instead`
          : `drop it and add it again (NOT VALID, then VALIDATE) on the new column after contract, or define it on ${display(table)} instead`),
    );
  }
  const version = Number((await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v);
  if (version < 180000) {
    for (const fk of found.constraints.filter((c) => c.kind === 'foreign-key' && c.direction === 'from')) {
      problems.push(
        `column "${column}" has foreign key ${fk.name}, and PostgreSQL before 18 cannot add a foreign key NOT VALID on a partitioned table, so its copy would block writes while it scans: ` +
          `drop it before the plan and add it again after contract at a quiet time, or upgrade to PostgreSQL 18`,
      );
    }
  }
  return problems;
}

/**
 * Name each carried index's copies on the partitions: the copy of an index a
 * partition has (attached to the carried one) takes that index's name with
 * the new column in it, as on the table itself; `<name>_pgshift` until
 * contract.
 */
export async function namePartitionCopies(
  client: Client,
  carry: CarryOver,
  table: QualifiedName,
  partitioning: Partitioning,
  from: string,
  to: string,
): Promise<CarryOver> {
  const schemas = [...new Set([table.schema, ...partitioning.partitions.map((p) => p.table.schema)])];
  const taken = await client.query<{ n: string }>(
    `SELECT c.relname::text AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY ($1::text[])`,
    [schemas],
  );
  const used = new Set(taken.rows.map((r) => r.n));
  for (const i of carry.indexes) used.add(i.finalName).add(i.tempName);
  const indexes: CarriedIndex[] = [];
  for (const i of carry.indexes) {
    const children = await client.query<{ schema: string; table: string; index: string }>(
      `WITH RECURSIVE t AS (
         SELECT inhrelid AS oid FROM pg_inherits WHERE inhparent = to_regclass($1)
         UNION ALL SELECT h.inhrelid FROM pg_inherits h JOIN t ON h.inhparent = t.oid)
       SELECT n.nspname AS schema, tc.relname AS table, ic.relname AS index
         FROM t JOIN pg_index x ON x.indexrelid = t.oid
         JOIN pg_class ic ON ic.oid = x.indexrelid JOIN pg_class tc ON tc.oid = x.indrelid JOIN pg_namespace n ON n.oid = tc.relnamespace`,
      [qualified({ schema: table.schema, name: i.name })],
    );
    const partitions: PartitionCopyNames[] = partitioning.partitions
      .filter((p) => !p.foreign)
      .map((p) => {
        const original = children.rows.find((c) => c.schema === p.table.schema && c.table === p.table.name)?.index ?? objectName(p.table.name, i.finalName);
        const finalName = renamedObjectName(original, p.table.name, from, to, used);
        used.add(finalName);
        const tempName = objectName(finalName, 'pgshift');
        used.add(tempName);
        return { table: p.table, tempName, finalName };
      });
    indexes.push({ ...i, partitions });
  }
  return { ...carry, indexes };
}
