import type { TableFacts } from '../../../db/catalog.js';
import type { ColumnObjects } from '../../../db/column-objects.js';
import { inSavepoint, singleStatement, type Client } from '../../../db/client.js';
import { ident, qualified, type QualifiedName } from '../../../db/ident.js';
import type { RetypeFacts } from '../../model.js';
import { retypedColumn, type RetypeSpec } from './spec.js';

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
export async function probeRetype(
  client: Client,
  table: QualifiedName,
  facts: TableFacts,
  change: RetypeSpec,
  newType: string,
  objects: ColumnObjects,
): Promise<RetypeFacts> {
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
  return inSavepoint(
    client,
    async () => {
      await client.query(`CREATE TEMP TABLE pgshift_retype_probe (LIKE ${qualified(table)} INCLUDING DEFAULTS INCLUDING INDEXES) ON COMMIT DROP`);
      const before = await files();
      await client.query(singleStatement(`ALTER TABLE pg_temp.pgshift_retype_probe ALTER COLUMN ${col} TYPE ${newType} USING (${change.using})`));
      const after = await files();
      if (after !== before) return no(`changing ${old.type} to ${newType} with this "using" rewrites the table or an index`);
      await client.query(singleStatement(`ALTER TABLE pg_temp.pgshift_retype_probe ALTER COLUMN ${col} TYPE ${old.type} USING (${change.reverse})`));
      const back = await files();
      return { metadataOnly: true, reverseMetadataOnly: back === after, reason: '' };
    },
    { undo: true },
  ).catch((error: unknown) => no(`the in-place change was refused: ${(error as Error).message}`));
}
