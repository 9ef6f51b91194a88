import { qualified } from '../db/ident.js';
import type { ColumnChange, PlanFacts } from '../changes/model.js';
import type { ObjectNames } from '../changes/sql-objects.js';
import type { Client } from '../db/client.js';
import type { Guards } from '../plan/types.js';
import { withGuards } from '../runner/guards.js';
import { enterPlanTransaction } from './backfill.js';
import { differsPredicate } from './consistency.js';
import { batchEndSql, keyAsText, rangeWhere, readKey } from './keyset.js';

/** Rows per verification batch: each is a short read-only transaction. */
const VERIFY_BATCH_ROWS = 50_000;
/** How many differing keys a verification reports. */
const SAMPLE_KEYS = 5;

/** What `verify` found. */
export interface VerifyResult {
  readonly differing: number;
  readonly sampleKeys: readonly (readonly string[])[];
  readonly rowsChecked: number;
}

/**
 * Count rows whose old and new columns disagree, walking the table in keyset
 * batches so no transaction stays open long and memory stays flat.
 */
export async function verifyRows(
  client: Client,
  facts: PlanFacts,
  change: ColumnChange,
  names: ObjectNames,
  guards: Guards,
): Promise<VerifyResult> {
  const key = facts.key;
  let lastKey: string[] | null = null;
  let differing = 0;
  let rowsChecked = 0;
  const sampleKeys: string[][] = [];
  for (;;) {
    const lower: string[] = lastKey ?? [];
    const batch = await withGuards(client, 'guarded', guards, async () => {
      await enterPlanTransaction(client, facts, false);
      const bound = await client.query(batchEndSql(facts.table, key, lastKey !== null, false), [VERIFY_BATCH_ROWS, ...lower]);
      const end = bound.rows[0] ? readKey(bound.rows[0], key) : null;
      const where = rangeWhere(key, lastKey !== null, end !== null, 1);
      const params = [...lower, ...(end ?? [])];
      const found = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${qualified(facts.table)} WHERE ${where} AND ${differsPredicate(change, names)}`,
        params,
      );
      const n = Number(found.rows[0]?.n ?? 0);
      const samples =
        n > 0 && sampleKeys.length < SAMPLE_KEYS
          ? (
              await client.query(
                `SELECT ${keyAsText(key)} FROM ${qualified(facts.table)} WHERE ${where} AND ${differsPredicate(change, names)} LIMIT ${SAMPLE_KEYS}`,
                params,
              )
            ).rows.map((r) => readKey(r, key))
          : [];
      return { end, n, samples };
    });
    differing += batch.n;
    sampleKeys.push(...batch.samples.slice(0, SAMPLE_KEYS - sampleKeys.length));
    if (batch.end === null) break;
    rowsChecked += VERIFY_BATCH_ROWS;
    lastKey = batch.end;
  }
  return { differing, sampleKeys, rowsChecked };
}
