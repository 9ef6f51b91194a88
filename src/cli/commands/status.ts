import type { Command } from 'commander';
import { status, type PlanStatus } from '../../api/status.js';
import { loadPlans } from '../../plan/load.js';
import { runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import { table, type Output } from '../output.js';
import type { CommandResult, Run } from './types.js';

/** `migrate plan status [PLAN...] [--json]` */
export function statusCommand(plan: Command, run: Run): void {
  withCommonOptions(plan.command('status').argument('[plans...]', 'plan names (default: all)'))
    .description('plan, table, phase, status, backfill progress and last event of each plan')
    .action(async (names: string[], o: CommonOptions) =>
      run(o, async (output) => {
        const plans = await loadPlans(o.dir, names);
        const rows = await status(plans, runOptions(o), names.length === 0);
        if (output.json) output.document(rows);
        else output.result({}, render(rows));
        return {};
      }),
    );
}

function render(rows: readonly PlanStatus[]): string {
  return table(
    ['plan', 'table', 'phase', 'status', 'next', 'backfill', 'last event'],
    rows.map((r) => [
      r.plan + (r.edited ? ' (edited!)' : ''),
      r.table,
      r.phase ?? '-',
      r.status + (r.unfinished ? ` (${r.unfinished.action} of ${r.unfinished.phase} unfinished)` : ''),
      r.next ?? '-',
      r.backfill ? `${r.backfill.total ? Math.min(100, Math.floor((100 * r.backfill.done) / r.backfill.total)) : 100}% (${r.backfill.done}/${r.backfill.total})` : '-',
      r.lastEvent
        ? `${r.lastEvent.action} ${r.lastEvent.phase} ${r.lastEvent.outcome} ${r.lastEvent.finishedAt.toISOString()}` + (r.lastError ? `: ${r.lastError.split('\n')[0]}` : '')
        : '-',
    ]),
  );
}
