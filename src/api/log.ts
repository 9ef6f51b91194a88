import type { HistoryEvent } from '../state/store.js';
import { withState, type RunOptions } from './session.js';

/** How many events `log` returns unless told otherwise. */
export const DEFAULT_LOG_LIMIT = 100;

/**
 * The history of the named plans (all plans when none), newest first: each
 * event with its outcome, duration, error, who ran it and whether `--force`
 * was given. Reads only; a database pgshift never touched has no history.
 */
export async function history(plans: readonly string[], options: RunOptions = {}, limit = DEFAULT_LOG_LIMIT): Promise<HistoryEvent[]> {
  return withState(options, (_client, store) => store.history(plans, limit));
}
