import { literal } from '../db/ident.js';
import type { PlanFacts } from '../changes/model.js';
import { BACKFILL_SETTING } from '../changes/sql-objects.js';
import type { Client } from '../db/client.js';

/**
 * Mark a transaction as pgshift's own: user expressions resolve with the
 * plan's search_path whatever the session's, and (for the backfill) the sync
 * trigger stands aside (the first test of its body, or its WHEN clause for
 * plans started before inlining), so the backfill's writes never re-derive
 * the old side. Both settings are transaction-local.
 */
export async function enterPlanTransaction(client: Client, facts: PlanFacts, backfill: boolean): Promise<void> {
  await client.query(planTransactionSettings(facts, backfill));
}

/** The `SELECT set_config(…)` statement `enterPlanTransaction` runs, for a batch that sends it along with others. */
export function planTransactionSettings(facts: PlanFacts, backfill: boolean): string {
  const settings = [`set_config('search_path', ${literal(facts.searchPath)}, true)`];
  if (backfill) {
    settings.push(`set_config(${literal(BACKFILL_SETTING)}, 'on', true)`);
    // A batch and its checkpoint commit together, and both are derived from
    // rows already durable: a crash that loses the last few unflushed batches
    // loses their checkpoint with them, and the resumed run redoes them. So
    // the batch need not wait for its WAL flush, and application commits are
    // not queued behind the backfill's flushes either.
    settings.push(`set_config('synchronous_commit', 'off', true)`);
  }
  return `SELECT ${settings.join(', ')}`;
}
