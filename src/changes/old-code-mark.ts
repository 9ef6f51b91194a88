import { ident, literal } from '../db/ident.js';

/**
 * The session setting the sync trigger sets once a session has been
 * recorded as old code for one plan in one generation of the gate's watch.
 * Custom settings need identifier-like names: the plan's dashes become
 * underscores, and the prefix keeps a plan name that starts with a digit
 * valid. Generation 0 keeps the name triggers had before generations
 * (`ow_<plan>`), so plans already in flight read as generation 0; a later
 * one puts its number before the underscore (`ow3_<plan>`), which no plan
 * name can forge, as the digits end at the first underscore. A new name is
 * unset in every session, so each records again on its next old-side write.
 */
export function oldCodeSetting(plan: string, generation = 0): string {
  return `pgshift.ow${generation > 0 ? generation : ''}_${plan.replace(/-/g, '_')}`;
}

/**
 * The statements the sync trigger runs where a client wrote the old side
 * (not where the trigger derived it; `when`, if given, is what says so): the
 * old-code gate's evidence. Per row
 * it reads one session-local setting: no shared state, no row written, no
 * setting changed. On a session's first old-code write it sets the setting
 * and calls `old_code_write()`, which records the session (pid and start,
 * `application_name`, user, address, when) in a row of its own. The setting
 * carries the watch's generation: pgshift starts a new one (redefining this
 * function, no table lock) whenever the gate saw writes, so a session that
 * keeps writing is recorded again, and the gate asks "was an old-side write
 * recorded since the generation started", never "is that session still
 * connected", which a pooler's server connection always is. Measured in
 * bench:gate, keeping a per-row count or a per-second timestamp in a
 * setting cost 2–28 % of the write path (a `set_config` per transaction,
 * or the clock arithmetic per row); this does not. The setting is set before
 * the call, so a call that fails (a role without USAGE on the state schema,
 * a state schema older than version 4) is not tried again on every row; the
 * failure is swallowed, because the gate must never fail an application's
 * write. The subtransaction of that block is entered once per session.
 */
export function oldCodeMark(plan: string, generation: number, stateSchema: string, pad: string, when?: string): string[] {
  const setting = literal(oldCodeSetting(plan, generation));
  // `when` goes into the same test: plpgsql prepares every expression it evaluates once per transaction, so one test costs less than two.
  return [
    `${pad}-- pgshift old-code gate: a client wrote the old side`,
    `${pad}IF ${when ? `(${when}) AND ` : ''}current_setting(${setting}, true) IS NULL THEN`,
    `${pad}  PERFORM set_config(${setting}, 'recorded', false);`,
    `${pad}  BEGIN`,
    `${pad}    PERFORM ${ident(stateSchema)}.old_code_write(${literal(plan)});`,
    `${pad}  EXCEPTION WHEN OTHERS THEN NULL;`,
    `${pad}  END;`,
    `${pad}END IF;`,
  ];
}
