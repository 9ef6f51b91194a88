import type { Client } from './client.js';
import { objectName, qualified, type QualifiedName } from './ident.js';

/** One partition below a partitioned table. */
export interface PartitionNode {
  readonly table: QualifiedName;
  /** The partitioned table it is a partition of. */
  readonly parent: QualifiedName;
  /** Itself partitioned (sub-partitioned): it holds no rows, its partitions do. */
  readonly partitioned: boolean;
  /** A foreign table: PostgreSQL cannot index it. */
  readonly foreign: boolean;
}

/** How a partitioned table is partitioned, read when a plan starts. */
export interface Partitioning {
  /** Partition key columns of the table and of every sub-partitioned partition: a unique index must include all of them. */
  readonly keyColumns: readonly string[];
  /** Some partition key is an expression: no unique index is possible on the table. */
  readonly keyHasExpressions: boolean;
  /** Every partition, at any depth, parents before their partitions. */
  readonly partitions: readonly PartitionNode[];
}

/** The partitioning of `table`, or undefined when it is not a partitioned table. */
export async function readPartitioning(client: Client, table: QualifiedName): Promise<Partitioning | undefined> {
  const t = qualified(table);
  const kind = await client.query<{ k: string }>(`SELECT relkind::text AS k FROM pg_class WHERE oid = $1::regclass`, [t]);
  if (kind.rows[0]?.k !== 'p') return undefined;
  const { rows } = await client.query<{ schema: string; name: string; pschema: string; pname: string; kind: string; oid: number }>(
    `WITH RECURSIVE tree AS (
       SELECT inhrelid AS oid, inhparent AS parent, 1 AS depth FROM pg_inherits WHERE inhparent = $1::regclass
       UNION ALL
       SELECT i.inhrelid, i.inhparent, t.depth + 1 FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid)
     SELECT n.nspname AS schema, c.relname AS name, pn.nspname AS pschema, pc.relname AS pname, c.relkind::text AS kind
       FROM tree t
       JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class pc ON pc.oid = t.parent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
      ORDER BY t.depth, n.nspname, c.relname`,
    [t],
  );
  const keys = await client.query<{ cols: string[]; exprs: boolean }>(
    `SELECT ARRAY(SELECT a.attname::text FROM unnest(pt.partattrs::int2[]) AS k(n)
                    JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = k.n) AS cols,
            pt.partexprs IS NOT NULL AS exprs
       FROM pg_partitioned_table pt
      WHERE pt.partrelid = $1::regclass
         OR pt.partrelid IN (SELECT c.oid FROM pg_class c WHERE c.relispartition AND c.relkind = 'p'
                               AND $1::regclass = ANY (SELECT oid FROM pg_partition_ancestors(c.oid)))`,
    [t],
  );
  return {
    keyColumns: [...new Set(keys.rows.flatMap((k) => k.cols))],
    keyHasExpressions: keys.rows.some((k) => k.exprs),
    partitions: rows.map((r) => ({
      table: { schema: r.schema, name: r.name },
      parent: { schema: r.pschema, name: r.pname },
      partitioned: r.kind === 'p',
      foreign: r.kind === 'f',
    })),
  };
}

/** The name of pgshift's index on one partition: `<partition>_<parts…>`, length-safe. */
export function partitionIndexName(partition: QualifiedName, ...parts: string[]): string {
  return objectName(partition.name, ...parts);
}
