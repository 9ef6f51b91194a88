import { literal } from '../db/ident.js';
import type { PlanFacts } from '../changes/model.js';
import { BACKFILL_SETTING, SAFE_SEARCH_PATH } from '../changes/sql-objects.js';
import type { Client } from '../db/client.js';

/**
 * Mark a transaction as pgshift's own: (for the backfill) the sync trigger
 * stands aside (the first test of its body, or its WHEN clause for plans
 * started before inlining), so the backfill's writes never re-derive the old
 * side; and the search_path is fixed. Plans whose expressions were bound
 * at start (`facts.inline.bound`) run under `pg_catalog, pg_temp`: their
 * expression functions' bodies were bound when created, and the statements
 * around them (the `IS DISTINCT FROM` of the batch's WHERE, verify's
 * comparisons) then bind no operator or function from a schema another role
 * may write. Older plans' expression functions are parsed when called, so
 * they keep the plan's search_path. Every setting is transaction-local:
 * it holds behind a transaction pooler and leaves the session as it was.
 */
export async function enterPlanTransaction(client: Client, facts: PlanFacts, backfill: boolean): Promise<void> {
  await client.query(planTransactionSettings(facts, backfill));
}

/** The `SELECT set_config(…)` statement `enterPlanTransaction` runs, for a batch that sends it along with others; `bound`: its SQL binds every name already (an in-place fix). */
export function planTransactionSettings(facts: PlanFacts, backfill: boolean, bound = false): string {
  const settings = [`pg_catalog.set_config('search_path', ${literal(bound || facts.inline?.bound ? SAFE_SEARCH_PATH : facts.searchPath)}, true)`];
  if (backfill) {
    settings.push(`pg_catalog.set_config(${literal(BACKFILL_SETTING)}, 'on', true)`);
    // A batch and its checkpoint commit together, and both are derived from
    // rows already durable: a crash that loses the last few unflushed batches
    // loses their checkpoint with them, and the resumed run redoes them. So
    // the batch need not wait for its WAL flush, and application commits are
    // not queued behind the backfill's flushes either.
    settings.push(`pg_catalog.set_config('synchronous_commit', 'off', true)`);
  }
  return `SELECT ${settings.join(', ')}`;
}
