import { literal } from '../db/ident.js';
import type { PlanFacts } from '../changes/model.js';
import { BACKFILL_SETTING } from '../changes/sql-objects.js';
import type { Client } from '../db/client.js';

/**
 * Mark a transaction as pgshift's own: user expressions resolve with the
 * plan's search_path whatever the session's, and (for the backfill) the sync
 * trigger's WHEN clause stands aside, so the backfill's writes cost no trigger
 * call and never re-derive the old side. Both settings are transaction-local.
 */
export async function enterPlanTransaction(client: Client, facts: PlanFacts, backfill: boolean): Promise<void> {
  const settings = [`set_config('search_path', ${literal(facts.searchPath)}, true)`];
  if (backfill) settings.push(`set_config(${literal(BACKFILL_SETTING)}, 'on', true)`);
  await client.query(`SELECT ${settings.join(', ')}`);
}
