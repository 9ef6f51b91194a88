import { planCarryOver, type CarryOver } from '../changes/carry-over.js';
import type { RetypeFacts } from '../changes/model.js';
import type { DependentView } from '../changes/dependent-views.js';
import { retypedColumn } from '../changes/retype.js';
import { readDependentViews } from './view-rewrite.js';
import { singleStatement, type Client } from '../db/client.js';
import type { TableFacts } from '../db/catalog.js';
import { readColumnObjects, type ColumnObjects } from '../db/column-objects.js';
import { display, ident, qualified, type QualifiedName } from '../db/ident.js';
import { readPartitioning } from '../db/partitions.js';
import { namePartitionCopies, partitionRenameProblems } from './partition-dependents.js';
import type { RetypeSpec } from './schema.js';
import type { Plan } from './types.js';

/** What `checkDependents` found: problems, and facts for the plan. */
export interface DependentsCheck {
  readonly problems: readonly { readonly path: string; readonly message: string }[];
  readonly facts: { readonly carry?: CarryOver; readonly retype?: RetypeFacts; readonly views?: readonly DependentView[] };
}

/**
 * Look at what depends on the columns a plan replaces. A rename carries
 * indexes, CHECKs, foreign keys (both ways), owned sequences and the comment,
 * and records them; views and materialized views reading the columns are
 * recorded (see view-rewrite); every kind refuses what it cannot carry (rules,
 * policies, triggers naming the column, statistics objects, exclusion
 * constraints, the primary key), since contract's DROP COLUMN would fail on
 * them or silently take them along. A retype is probed for an in-place type
 * change. Runs inside a transaction the caller rolls back.
 */
export async function checkDependents(client: Client, plan: Plan, table: QualifiedName, facts: TableFacts, newType: string): Promise<DependentsCheck> {
  const change = plan.change;
  const problems: { path: string; message: string }[] = [];
  const columns = change.kind === 'merge' ? change.columns : [change.column];
  const objects = new Map<string, ColumnObjects>();
  for (const column of columns) {
    const found = await readColumnObjects(client, table, column, change.kind === 'rename' ? change.to : column);
    objects.set(column, found);
    for (const u of found.unsupported)
      problems.push({ path: change.kind, message: `column "${column}" is used by ${u}${u.includes('; ') ? '' : '; drop it first and create it again after contract'}` });
    if (change.kind !== 'rename') {
      for (const fk of found.constraints.filter((c) => c.kind === 'foreign-key' && c.direction === 'to')) {
        problems.push({
          path: change.kind,
          message: `column "${column}" is referenced by foreign key ${fk.name} on ${display(fk.table)}; only rename carries foreign keys to a column`,
        });
      }
    }
  }
  const viewOids = [...new Set([...objects.values()].flatMap((o) => o.views ?? []))];
  const dependentViews = viewOids.length ? await readDependentViews(client, viewOids) : { views: [], problems: [] };
  problems.push(...dependentViews.problems.map((message) => ({ path: change.kind, message })));
  const views = dependentViews.views.length ? { views: dependentViews.views } : {};
  if (problems.length || change.kind === 'split' || change.kind === 'merge') return { problems, facts: views };

  const found = objects.get(change.column)!;
  if (change.kind === 'rename') {
    // A partitioned table: indexes are built per partition (CONCURRENTLY on each, then attached); what cannot be is refused.
    const partitioning = await readPartitioning(client, table);
    if (partitioning) {
      for (const message of await partitionRenameProblems(client, table, partitioning, change.column, found)) problems.push({ path: 'rename', message });
      if (problems.length) return { problems, facts: views };
    }
    const taken = await client.query<{ n: string }>(
      `SELECT c.relname::text AS n FROM pg_class c WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1::regclass)
       UNION SELECT conname::text FROM pg_constraint WHERE conrelid = $1::regclass`,
      [qualified(table)],
    );
    const carry = planCarryOver(found, table, change.column, change.to, new Set(taken.rows.map((r) => r.n)));
    return { problems, facts: { ...views, carry: partitioning ? await namePartitionCopies(client, carry, table, partitioning, change.column, change.to) : carry } };
  }
  // ALTER COLUMN … TYPE refuses a column a view reads; the copy lets the views move over at stop-write.
  const probe: RetypeFacts = dependentViews.views.length
    ? { metadataOnly: false, reverseMetadataOnly: false, reason: 'views read the column; they move to the new column at stop-write' }
    : await probeRetype(client, table, facts, change, newType, found);
  const notCarried = [...found.indexes.map((i) => `index ${i.name}`), ...found.constraints.map((c) => `constraint ${c.name} on ${display(c.table)}`)];
  return { problems, facts: { ...views, retype: probe.metadataOnly ? probe : { ...probe, notCarried } } };
}

/**
 * Would `ALTER COLUMN … TYPE … USING` rewrite anything? Rather than guess from
 * `pg_cast`, ask PostgreSQL: the same ALTER runs on an empty temporary copy
 * of the table (same columns, defaults and indexes, taken by `LIKE`), and
 * the copy's storage files are compared before and after; a rewrite of the
 * table or a rebuild of an index gives a new relfilenode (an index PostgreSQL
 * keeps is recreated under a new oid but keeps its file, so files are
 * compared, not oids). This follows the
 * server's own rules (binary-coercible casts, `varchar` and `numeric` typmod
 * widening, reusable indexes), the `using` expression included. CHECK and
 * FOREIGN KEY constraints would be re-checked by a scan, so they rule it out,
 * as do declared constraints and `as` (a new column was asked for).
 */
async function probeRetype(client: Client, table: QualifiedName, facts: TableFacts, change: RetypeSpec, newType: string, objects: ColumnObjects): Promise<RetypeFacts> {
  const no = (reason: string): RetypeFacts => ({ metadataOnly: false, reverseMetadataOnly: false, reason });
  const old = facts.columns.find((c) => c.name === change.column)!;
  if (change.as !== undefined && change.as !== change.column) return no(`retype.as asks for a new column "${retypedColumn(change)}"`);
  if (change.default !== undefined || change.unique || (change.not_null !== undefined && change.not_null !== old.notNull))
    return no('the new column declares constraints');
  if (objects.constraints.length) return no('CHECK or FOREIGN KEY constraints use the column, and PostgreSQL would re-check them by a scan');
  const col = ident(change.column);
  const files = async (): Promise<string> =>
    (
      await client.query<{ f: string }>(
        `SELECT string_agg(c.relfilenode::text, ',' ORDER BY c.relfilenode) AS f FROM pg_class c
          WHERE c.oid = 'pg_temp.pgshift_retype_probe'::regclass
             OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'pg_temp.pgshift_retype_probe'::regclass)`,
      )
    ).rows[0]!.f;
  await client.query('SAVEPOINT pgshift_probe');
  try {
    await client.query(`CREATE TEMP TABLE pgshift_retype_probe (LIKE ${qualified(table)} INCLUDING DEFAULTS INCLUDING INDEXES) ON COMMIT DROP`);
    const before = await files();
    await client.query(singleStatement(`ALTER TABLE pg_temp.pgshift_retype_probe ALTER COLUMN ${col} TYPE ${newType} USING (${change.using})`));
    const after = await files();
    if (after !== before) return no(`changing ${old.type} to ${newType} with this "using" rewrites the table or an index`);
    await client.query(singleStatement(`ALTER TABLE pg_temp.pgshift_retype_probe ALTER COLUMN ${col} TYPE ${old.type} USING (${change.reverse})`));
    const back = await files();
    return { metadataOnly: true, reverseMetadataOnly: back === after, reason: '' };
  } catch (error) {
    return no(`the in-place change was refused: ${(error as Error).message}`);
  } finally {
    await client.query('ROLLBACK TO SAVEPOINT pgshift_probe');
  }
}
