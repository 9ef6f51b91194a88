import type { Client } from '../db/client.js';
import { resolveTable } from '../db/catalog.js';
import { kindNamed } from '../changes/kinds/registry.js';
import { display } from '../db/ident.js';
import type { Phase } from '../phases/phases.js';
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
 * release order, on the same table, is not contracted; or another plan is
 * in flight on its table (one started by hand out of order). One plan in
 * flight per table: the next starts once the one before it is contracted.
 */
export async function waitingBehind(client: Client, states: ReadonlyMap<string, PlanState>, plan: Plan, queue: readonly Plan[]): Promise<Waiting | null> {
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
  const index = queue.findIndex((p) => p.name === plan.name);
  for (const earlier of queue.slice(0, Math.max(0, index))) {
    const s = states.get(earlier.name);
    if (s?.status === 'complete') continue;
    if ((s && inFlight(s) ? namesOf(s) : [await tableName(client, earlier.table)]).includes(table)) return behind(earlier.name);
  }
  const other = [...states.values()].find((s) => s.name !== plan.name && namesOf(s).includes(table) && inFlight(s));
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
