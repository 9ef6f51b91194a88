import type { Client } from '../db/client.js';
import { advisoryHolder } from '../db/locks.js';
import { PlanBusyError } from '../errors.js';

/**
 * Run `fn` holding the plan's session-level advisory lock. The lock is
 * tried, never waited for: a second runner fails at once (exit 5) naming the
 * holder, so two pipelines never apply a phase twice.
 */
export async function withPlanLock<T>(client: Client, plan: string, fn: () => Promise<T>): Promise<T> {
  const { rows } = await client.query<{ key: string; ok: boolean }>(
    `SELECT k::text AS key, pg_try_advisory_lock(k) AS ok FROM (SELECT hashtextextended($1, 0) AS k) s`,
    [`pgshift-plan:${plan}`],
  );
  const { key, ok } = rows[0]!;
  if (!ok) throw new PlanBusyError(plan, await advisoryHolder(client, key));
  try {
    return await fn();
  } finally {
    await client.query('SELECT pg_advisory_unlock($1::int8)', [key]).catch(() => undefined);
  }
}
