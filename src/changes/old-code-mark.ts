import { ident, literal } from '../db/ident.js';
import { OLD_CODE_MARK_INTERVAL_S } from '../defaults.js';

/**
 * The session setting the sync trigger keeps for one plan: the time slot of
 * its last record. Custom settings need identifier-like names: the plan's
 * dashes become underscores, and the prefix keeps a plan name that starts
 * with a digit valid.
 */
export function oldCodeSetting(plan: string): string {
  return `pgshift.ow_${plan.replace(/-/g, '_')}`;
}

/**
 * The statements the sync trigger runs where a client wrote the old side
 * (not where the trigger derived it): the old-code gate's evidence. Per row
 * it only compares the current second with a session-local setting: no
 * shared state, no row written, no setting changed. At most once per
 * session per `OLD_CODE_MARK_INTERVAL_S` it sets the setting and calls
 * `old_code_write()` (one upsert of the session's own row, with who and
 * when). A count kept per row in a setting was measured at 10–30 % of the
 * write path (a `set_config` in every transaction); so what is counted is
 * seconds in which a session wrote the old side, not rows. The setting is
 * set before the call, so a call that fails (a role without USAGE on the
 * state schema, a state schema older than version 3) is tried again next
 * second, not on every row; the failure is swallowed, because the gate must
 * never fail an application's write. The subtransaction of that block is
 * only entered on the once-a-second path.
 */
export function oldCodeMark(plan: string, stateSchema: string, pad: string): string[] {
  const setting = literal(oldCodeSetting(plan));
  const now = `(date_part('epoch', statement_timestamp())::int8 / ${OLD_CODE_MARK_INTERVAL_S})::text`;
  return [
    `${pad}-- pgshift old-code gate: a client wrote the old side`,
    `${pad}IF current_setting(${setting}, true) IS DISTINCT FROM ${now} THEN`,
    `${pad}  PERFORM set_config(${setting}, ${now}, false);`,
    `${pad}  BEGIN`,
    `${pad}    PERFORM ${ident(stateSchema)}.old_code_write(${literal(plan)});`,
    `${pad}  EXCEPTION WHEN OTHERS THEN NULL;`,
    `${pad}  END;`,
    `${pad}END IF;`,
  ];
}
