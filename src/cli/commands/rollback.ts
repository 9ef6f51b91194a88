import type { Command } from 'commander';
import { rollback } from '../../api/rollback.js';
import { loadPlans } from '../../plan/load.js';
import type { Phase } from '../../phases/phases.js';
import { phaseArgument, runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import type { Output } from '../output.js';
import { report } from './apply.js';
import type { CommandResult, Run } from './types.js';

/** `migrate plan rollback PLAN [--phase current|<phase>]` */
export function rollbackCommand(plan: Command, run: Run): void {
  withCommonOptions(plan.command('rollback').argument('<plan>', 'plan name'), { guards: true, force: true })
    .description('undo the current phase, or every phase down to and including <phase>')
    .option('--phase <phase>', 'current, or the lowest phase to undo', phaseArgument('current'), 'current')
    .action(async (name: string, o: CommonOptions & { phase: Phase | 'current' }) =>
      run(o, async (output) => {
        const [plan] = await loadPlans(o.dir, [name]);
        const outcome = await rollback(plan!, o.phase, runOptions(o));
        report(output, 'rollback', outcome);
        return { errors: outcome.error ? [outcome.error] : [] };
      }),
    );
}
