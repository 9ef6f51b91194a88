import type { Client } from '../db/client.js';
import { resolveTable } from '../db/catalog.js';
import { kindNamed } from '../changes/kinds/registry.js';
import { display } from '../db/ident.js';
import type { Phase } from '../phases/phases.js';
import { overlapping, planColumns } from '../plan/queue.js';
import type { Plan } from '../plan/types.js';
import { inFlight, type PlanState } from '../state/store.js';

/** The plan a plan that has not started waits for, and where that one stands. */
export interface Waiting {
  readonly behind: string;
  /** Its phase (null before it started, or once rolled back). */
  readonly at: Phase | null;
  readonly status: PlanState['status'] | 'not_started';
}

/**
 * Why a plan that has not started must wait, or null when it may start:
 * a plan its `after:` names is not contracted; a plan before it in the
 * release order, on the same table and sharing a column with it
 * (`planColumns`), is not contracted; or another plan sharing a column is
 * in flight on its table (one started by hand out of order). Plans on one
 * table with disjoint columns do not wait for each other. `claims` are the
 * columns each plan in flight claims (`StateStore.claims`; null for a state
 * schema without them, whose plans in flight claim their whole table).
 */
export async function waitingBehind(
  client: Client,
  states: ReadonlyMap<string, PlanState>,
  plan: Plan,
  queue: readonly Plan[],
  claims: ReadonlyMap<string, readonly string[]> | null,
): Promise<Waiting | null> {
  const behind = (name: string): Waiting | null => {
    const s = states.get(name);
    if (s?.status === 'complete') return null;
    return { behind: name, at: s && inFlight(s) ? s.phase : null, status: s?.status ?? 'not_started' };
  };
  for (const name of plan.after) {
    const waiting = behind(name);
    if (waiting) return waiting;
  }
  const table = await tableName(client, plan.table);
  const columns = planColumns(plan);
  const claimed = (s: PlanState): readonly string[] | null => claims?.get(s.name) ?? null;
  const index = queue.findIndex((p) => p.name === plan.name);
  for (const earlier of queue.slice(0, Math.max(0, index))) {
    const s = states.get(earlier.name);
    if (s?.status === 'complete') continue;
    const started = s && inFlight(s);
    if (!(started ? namesOf(s) : [await tableName(client, earlier.table)]).includes(table)) continue;
    // An earlier plan in flight is judged by what it claimed when it started; one not started yet, by its file.
    if (overlapping(columns, started ? claimed(s) : planColumns(earlier))) return behind(earlier.name);
  }
  const other = [...states.values()].find((s) => s.name !== plan.name && namesOf(s).includes(table) && inFlight(s) && overlapping(columns, claimed(s)));
  return other ? { behind: other.name, at: other.phase, status: other.status } : null;
}

/** Every name an in-flight plan's table goes by: the one it started on, and any its kind gives it meanwhile (a rename-table's new one). */
function namesOf(s: PlanState): string[] {
  return [s.table, ...(kindNamed(s.kind).alsoNamed?.(s.facts) ?? []).map(display)];
}

/** `schema.table` of a plan's table as the catalog resolves it now (as written when it does not exist yet). */
async function tableName(client: Client, table: Plan['table']): Promise<string> {
  return display((await resolveTable(client, table)) ?? { schema: table.schema ?? 'public', name: table.name });
}

/** `waiting behind rename-users-user-name (at backfill)`. */
export function waitingText(w: Waiting): string {
  const where = w.at
    ? `at ${w.at}`
    : w.status === 'rolled_back'
      ? 'rolled back: apply it again, or remove its file'
      : w.status === 'not_started'
        ? 'not started'
        : w.status;
  return `waiting behind ${w.behind} (${where})`;
}
