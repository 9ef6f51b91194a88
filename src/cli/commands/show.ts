import type { Command } from 'commander';
import { show } from '../../api/show.js';
import type { Step } from '../../changes/steps.js';
import type { Phase } from '../../phases/phases.js';
import { loadPlans } from '../../plan/load.js';
import { phaseArgument, runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import type { Run } from './types.js';

/** `migrate plan show PLAN [--phase P]`: the SQL each phase would run, with its locks. Changes nothing. */
export function showCommand(plan: Command, run: Run): void {
  withCommonOptions(plan.command('show').argument('<plan>', 'plan name'))
    .description('the SQL each phase would run, with its locks, without running it')
    .option('--phase <phase>', 'only this phase', phaseArgument('all'))
    .action(async (name: string, o: CommonOptions & { phase?: Phase | 'all' }) =>
      run(o, async (output) => {
        const [p] = await loadPlans(o.dir, [name]);
        const phases = await show(p!, o.phase === 'all' ? undefined : o.phase, runOptions(o));
        for (const ph of phases) {
          output.result(
            { event: 'show', plan: name, phase: ph.phase, apply: ph.apply, rollback: ph.rollback, ...(ph.purge ? { purge: ph.purge } : {}) },
            [
              `-- phase ${ph.phase}: apply`,
              ...ph.apply.map(stepText),
              `-- phase ${ph.phase}: rollback`,
              ...ph.rollback.map(stepText),
              ...(ph.purge ? [`-- phase ${ph.phase}: purge (plan purge, or the first apply after contract.keep)`, ...ph.purge.map(stepText)] : []),
              '',
            ].join('\n'),
          );
        }
        return {};
      }),
    );
}

function stepText(step: Step): string {
  if (step.kind !== 'sql') return `-- ${step.kind}: ${step.description}`;
  const lock = step.locks?.length
    ? `locks ${step.locks.map((l) => `${l.mode} on ${l.table.schema}.${l.table.name}`).join(', ')}, taken first without queuing behind each other`
    : `lock ${step.lock}`;
  const how = [step.transaction ? 'one transaction' : 'no transaction', lock, `timeouts ${step.timeouts}`].join(', ');
  return `-- ${step.description} (${how})\n${step.statements.map((s) => s + ';').join('\n')}`;
}
