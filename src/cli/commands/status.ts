import type { Command } from 'commander';
import { status, type ArchiveStatus, type BackfillStatus, type PlanStatus } from '../../api/status.js';
import { describeOldCode, quietPeriod, type OldCodeActivity } from '../../api/old-code.js';
import { phaseIndex, PHASES } from '../../phases/phases.js';
import { loadPlans, readPlans } from '../../plan/load.js';
import { runOnFleet, targetsOf, withFleetOptions, type FleetOptions } from '../fleet.js';
import { runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import { ago, table } from '../output.js';
import type { Run } from './types.js';
import { waitingText } from '../../api/queue.js';

/** `migrate plan status [PLAN...] [--json]` */
export function statusCommand(plan: Command, run: Run): void {
  const command = withCommonOptions(plan.command('status').argument('[plans...]', 'plan names (default: all)')).description(
    'plan, table, phase, status, backfill progress and last event of each plan',
  );
  withFleetOptions(command).action(async (names: string[], o: CommonOptions & FleetOptions) =>
    run(o, async (output) => {
      const plans = await loadPlans(o.dir, names);
      // The whole folder decides the order, also when only some plans are named.
      const queue = names.length ? (await readPlans(o.dir)).plans : plans;
      const targets = await targetsOf(o);
      if (targets.length > 1) {
        return runOnFleet(
          output,
          targets,
          o,
          (url) => status(plans, runOptions(o, url), names.length === 0, queue),
          (rows) =>
            rows.map((r) => ({
              plan: r.plan,
              phase: r.phase,
              outcome: r.status + (r.unfinished ? ` (${r.unfinished.action} of ${r.unfinished.phase} unfinished)` : ''),
              exitCode: 0,
            })),
        );
      }
      const rows = await status(plans, runOptions(o), names.length === 0, queue);
      if (output.json) output.document(rows);
      else output.result({}, render(rows));
      return {};
    }),
  );
}

function render(rows: readonly PlanStatus[]): string {
  const notes = rows.flatMap((r) => [
    ...(r.drift ?? []).map((d) => `${r.plan}: drift: ${d.message}`),
    ...(r.oldCode ? [`${r.plan}: old code: ${oldCodeText(r.oldCode)}`] : []),
    ...(r.archive ? [`${r.plan}: ${archiveText(r.archive)}`] : []),
    ...(r.steering ? [`${r.plan}: backfill ${r.steering.paused ? 'paused' : 'steered'} by ${r.steering.changedBy} ${ago(r.steering.changedAt)}`] : []),
  ]);
  return [
    table(
      ['plan', 'table', 'phase', 'status', 'next', 'backfill', 'last event'],
      rows.map((r) => [
        r.plan + (r.edited ? ' (edited!)' : ''),
        r.table,
        r.phase ? `${phaseIndex(r.phase) + 1}/${PHASES.length} ${r.phase}` : `0/${PHASES.length}`,
        r.status + (r.unfinished ? ` (${r.unfinished.action} of ${r.unfinished.phase} unfinished)` : ''),
        (r.next ?? '-') + (r.waiting ? `, ${waitingText(r.waiting)}` : ''),
        (r.backfill ? backfillText(r.backfill) : '-') + (r.steering?.paused ? ' (paused)' : ''),
        r.lastEvent
          ? `${r.lastEvent.action} ${r.lastEvent.phase} ${r.lastEvent.outcome} ${ago(r.lastEvent.finishedAt)}` +
            (r.lastError ? `: ${r.lastError.split('\n')[0]}` : '')
          : '-',
      ]),
    ),
    ...notes,
  ].join('\n');
}

/** The old-code gate's facts, and whether stop-write / contract may go on. */
function oldCodeText(a: OldCodeActivity): string {
  if (a.quietMs <= 0) return 'gate off (guards.old_code_quiet is 0)';
  const quiet = quietPeriod(a.quietMs);
  const total = a.lastWriteAt
    ? `${a.sessions} client session(s) wrote the old columns since the plan started, the last recorded write ${ago(a.lastWriteAt)}, ` +
      `none since the gate started watching afresh ${ago(a.watchingSince)}`
    : 'no write of the old columns seen';
  const watched = a.statementsWatched ? '' : ' (pg_stat_statements not installed: reads are not seen)';
  return a.recent
    ? `seen within guards.old_code_quiet (${quiet}), stop-write and contract wait: ${describeOldCode(a)}`
    : `${total}; quiet for guards.old_code_quiet (${quiet}): safe to go on${watched}`;
}

/** What contract archived: kept until when (rollback of contract still possible), or dropped. */
function archiveText(a: ArchiveStatus): string {
  const columns = a.columns.map((c) => `${c.column} as ${c.archive}`).join(', ');
  return a.purgedAt
    ? `archive dropped ${ago(a.purgedAt)} (${columns}): contract can no longer be rolled back`
    : `archived ${columns} until ${a.until?.toISOString() ?? '?'}; the first apply after drops them (plan purge: now), rollback brings them back`;
}

function backfillText(b: BackfillStatus): string {
  const percent = b.total ? Math.min(100, Math.floor((100 * b.done) / b.total)) : 100;
  const base = `${b.finished ? 100 : percent}% (${b.done}/${b.total})`;
  if (b.finished) return `${base} done`;
  return b.rowsPerSecond === null ? base : `${base} ${b.rowsPerSecond} rows/s, ETA ${b.etaSeconds ?? '?'} s`;
}
