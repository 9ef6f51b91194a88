import { qualified } from '../db/ident.js';
import type { ColumnChange, PlanFacts } from '../changes/model.js';
import type { ObjectNames } from '../changes/sql-objects.js';
import { sqlState, SqlState, type Client } from '../db/client.js';
import type { Guards } from '../plan/types.js';
import { withGuards } from '../runner/guards.js';
import { differsPredicate } from './consistency.js';
import { batchEndSql, keyAsText, keyOrder, onKeyIndex, rangeWhere, readKey } from './keyset.js';
import { enterPlanTransaction } from './plan-transaction.js';

/** Rows per verification batch: each is a short read-only transaction. */
const VERIFY_BATCH_ROWS = 50_000;
/** Never fewer rows than this in a batch, however often statement_timeout cuts it. */
const MIN_VERIFY_BATCH_ROWS = 500;
/** How many differing keys a verification reports. */
const SAMPLE_KEYS = 5;

/** What `verify` found. */
export interface VerifyResult {
  readonly differing: number;
  /** The first few differing keys, in key order, each as text per key column. */
  readonly sampleKeys: readonly (readonly string[])[];
  readonly rowsChecked: number;
}

/**
 * Count rows whose old and new columns disagree (NULL-safe, see
 * `differsPredicate`), walking the table in keyset batches so no transaction
 * stays open long and memory stays flat. Each batch is a plain MVCC read
 * (ACCESS SHARE, which conflicts only with ACCESS EXCLUSIVE): it blocks no
 * reader or writer, and waits at most lock_timeout behind DDL. A batch cut
 * by statement_timeout is retried at a quarter of its size.
 */
export async function verifyRows(client: Client, facts: PlanFacts, change: ColumnChange, names: ObjectNames, guards: Guards): Promise<VerifyResult> {
  const key = facts.key;
  const table = qualified(facts.table);
  const differs = differsPredicate(change, names);
  let lastKey: string[] | null = null;
  let differing = 0;
  let rowsChecked = 0;
  let size = VERIFY_BATCH_ROWS;
  const sampleKeys: string[][] = [];
  for (;;) {
    const lower: string[] = lastKey ?? [];
    let batch: { end: string[] | null; checked: number; n: number; samples: string[][] };
    try {
      batch = await withGuards(client, 'guarded', guards, async () => {
        await enterPlanTransaction(client, facts, false);
        const bound = await onKeyIndex(client, () => client.query(batchEndSql(facts.table, key, lastKey !== null, false), [size, ...lower]));
        const end = bound.rows[0] ? readKey(bound.rows[0], key) : null;
        const where = rangeWhere(key, lastKey !== null, end !== null, 1);
        const params = [...lower, ...(end ?? [])];
        const found = await client.query<{ checked: number; n: number }>(
          `SELECT count(*)::float8 AS checked, count(*) FILTER (WHERE ${differs})::float8 AS n FROM ${table} WHERE ${where}`,
          params,
        );
        const n = found.rows[0]?.n ?? 0;
        const want = SAMPLE_KEYS - sampleKeys.length;
        const samples =
          n > 0 && want > 0
            ? (await client.query(`SELECT ${keyAsText(key)} FROM ${table} WHERE ${where} AND ${differs} ORDER BY ${keyOrder(key)} LIMIT ${want}`, params)).rows.map((r) =>
                readKey(r, key),
              )
            : [];
        return { end, checked: found.rows[0]?.checked ?? 0, n, samples };
      });
    } catch (error) {
      if (sqlState(error) === SqlState.queryCanceled && size > MIN_VERIFY_BATCH_ROWS) {
        size = Math.max(MIN_VERIFY_BATCH_ROWS, Math.floor(size / 4));
        continue;
      }
      throw error;
    }
    differing += batch.n;
    rowsChecked += batch.checked;
    sampleKeys.push(...batch.samples);
    if (batch.end === null) break;
    lastKey = batch.end;
  }
  return { differing, sampleKeys, rowsChecked };
}
