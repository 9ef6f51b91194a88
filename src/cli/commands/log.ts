import type { Command } from 'commander';
import { DEFAULT_LOG_LIMIT, history } from '../../api/log.js';
import type { HistoryEvent } from '../../state/store.js';
import { integer, runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import { ago, table } from '../output.js';
import type { Run } from './types.js';

/** `migrate plan log [PLAN...] [--limit N] [--json]` */
export function logCommand(plan: Command, run: Run): void {
  withCommonOptions(plan.command('log').argument('[plans...]', 'plan names (default: every plan the database knows)'))
    .description('the history of applies and rollbacks, newest first')
    .option('--limit <n>', 'at most this many events', integer, DEFAULT_LOG_LIMIT)
    .action(async (names: string[], o: CommonOptions & { limit: number }) =>
      run(o, async (output) => {
        const events = await history(names, runOptions(o), o.limit);
        if (output.json) output.document(events);
        else output.result({}, render(events));
        return {};
      }),
    );
}

function render(events: readonly HistoryEvent[]): string {
  if (!events.length) return 'no events yet';
  return table(
    ['when', 'plan', 'action', 'phase', 'outcome', 'took', 'who', 'forced', 'error'],
    events.map((e) => [
      `${e.finishedAt.toISOString()} (${ago(e.finishedAt)})`,
      e.plan,
      e.action,
      e.phase,
      e.outcome,
      `${Math.round(e.durationMs)} ms`,
      `${e.actor} (pgshift ${e.version})`,
      e.forced ? 'yes' : '',
      (e.error ?? '').split('\n')[0]!,
    ]),
  );
}
