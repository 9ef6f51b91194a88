import { qualified, type QualifiedName } from '../db/ident.js';
import type { RunContext } from '../guard/context.js';
import { stepFailure } from '../guard/guards.js';
import type { DropIndexesStep } from '../changes/steps.js';
import { SAFE_PATH_IN_TRANSACTION } from '../changes/sql-objects.js';
import { withTransaction } from '../db/client.js';

/**
 * Drop, with `DROP INDEX CONCURRENTLY`, every index on `step.columns` of the
 * table that no constraint needs, before the transaction that drops the
 * columns would drop them itself. In that transaction the index files are
 * unlinked at COMMIT, under its ACCESS EXCLUSIVE lock, for a time that grows
 * with their size (docs/benchmarks.md); `DROP INDEX CONCURRENTLY` takes
 * SHARE UPDATE EXCLUSIVE, which no read or write conflicts with, and waits
 * for the transactions still using the index instead of blocking anyone.
 * Indexes backing a constraint (UNIQUE, a foreign key's referenced key)
 * cannot be dropped on their own: they stay with the transaction. Partitioned
 * indexes cannot be dropped CONCURRENTLY: they stay too. The list is read
 * from the catalog when the step runs (`pg_depend` of the index on the
 * column, which covers expression and partial indexes), so a re-run after a
 * failure finds only what is left. Runs outside a transaction, with no lock
 * or statement timeout, like CREATE INDEX CONCURRENTLY. `save` is given the
 * definitions (`pg_get_indexdef`) before the first drop, for contract's
 * rollback to build them again.
 */
export async function dropColumnIndexes(ctx: RunContext, step: DropIndexesStep, save?: (definitions: string[]) => Promise<void>): Promise<number> {
  // Definitions printed under an empty path (`SAFE_SEARCH_PATH`), so every name in them is qualified.
  const { rows } = await withTransaction(ctx.client, async () => {
    await ctx.client.query(SAFE_PATH_IN_TRANSACTION);
    return ctx.client.query<{ schema: string; name: string; definition: string }>(
      `SELECT DISTINCT n.nspname AS schema, c.relname AS name, pg_catalog.pg_get_indexdef(c.oid) AS definition
       FROM pg_attribute a
       JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum AND d.classid = 'pg_class'::regclass
       JOIN pg_index i ON i.indexrelid = d.objid
       JOIN pg_class c ON c.oid = i.indexrelid AND c.relkind = 'i'
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE a.attrelid = to_regclass($1) AND a.attname = ANY ($2::text[]) AND NOT a.attisdropped
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
      ORDER BY 1, 2`,
      [qualified(step.table), step.columns],
    );
  });
  // Recorded before any is dropped, so a run killed between two drops has kept them all.
  if (rows.length) await save?.(rows.map((r) => r.definition));
  try {
    await ctx.client.query('SET lock_timeout = 0; SET statement_timeout = 0');
    for (const index of rows.map((r): QualifiedName => ({ schema: r.schema, name: r.name }))) {
      ctx.stillHeld?.();
      ctx.log.info({ index: `${index.schema}.${index.name}` }, `dropping index ${index.schema}.${index.name} CONCURRENTLY before the columns go`);
      await ctx.client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualified(index)}`);
    }
  } catch (error) {
    throw stepFailure(step.description, error);
  } finally {
    await ctx.client.query('RESET lock_timeout; RESET statement_timeout').catch(() => undefined);
  }
  return rows.length;
}
