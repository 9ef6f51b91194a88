import { ident, literal } from '../db/ident.js';
import { OLD_CODE_MARK_INTERVAL_S } from '../defaults.js';

/**
 * The session settings the sync trigger keeps for one plan: the mark's time
 * slot, and the old-code writes counted since the last record. Custom
 * settings need identifier-like names: the plan's dashes become underscores,
 * and the prefix keeps a plan name that starts with a digit valid.
 */
export function oldCodeSettings(plan: string): { readonly slot: string; readonly count: string } {
  const key = plan.replace(/-/g, '_');
  return { slot: `pgshift.ow_${key}`, count: `pgshift.on_${key}` };
}

/**
 * The statements the sync trigger runs where a client wrote the old side
 * (not where the trigger derived it): the old-code gate's evidence. Per row
 * it only counts, in a session-local setting (no shared state, no row
 * written); at most once per session per `OLD_CODE_MARK_INTERVAL_S` it hands
 * the count, with who and when, to `old_code_write()` (one upsert of the
 * session's own row). The time slot is set before the call, so a call that
 * fails (a role without USAGE on the state schema, a state schema older than
 * version 3) is tried again next slot, not on every row; the failure is
 * swallowed, because the gate must never fail an application's write. The
 * subtransaction of that block is only entered on the throttled path.
 */
export function oldCodeMark(plan: string, stateSchema: string, pad: string): string[] {
  const { slot, count } = oldCodeSettings(plan);
  const counted = `coalesce(nullif(current_setting(${literal(count)}, true), '')::int8, 0) + 1`;
  // Assignments, not PERFORM: PL/pgSQL evaluates a simple expression in an
  // assignment on its fast path, while PERFORM runs a query through SPI.
  return [
    `${pad}-- pgshift old-code gate: a client wrote the old side`,
    `${pad}<<pgshift_gate>> DECLARE now_slot text := (date_part('epoch', statement_timestamp())::int8 / ${OLD_CODE_MARK_INTERVAL_S})::text; done text;`,
    `${pad}BEGIN`,
    `${pad}  IF current_setting(${literal(slot)}, true) IS DISTINCT FROM now_slot THEN`,
    `${pad}    done := set_config(${literal(slot)}, now_slot, false);`,
    `${pad}    BEGIN`,
    `${pad}      PERFORM ${ident(stateSchema)}.old_code_write(${literal(plan)}, ${counted});`,
    `${pad}      done := set_config(${literal(count)}, '0', false);`,
    `${pad}    EXCEPTION WHEN OTHERS THEN NULL;`,
    `${pad}    END;`,
    `${pad}  ELSE`,
    `${pad}    done := set_config(${literal(count)}, (${counted})::text, false);`,
    `${pad}  END IF;`,
    `${pad}END;`,
  ];
}
