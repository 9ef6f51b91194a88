import type { Command } from 'commander';
import { resume } from '../../api/steer.js';
import { runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import { said } from '../steered.js';
import type { Run } from './types.js';

/** `migrate plan resume PLAN` */
export function resumeCommand(plan: Command, run: Run): void {
  withCommonOptions(plan.command('resume').argument('<plan>', 'the paused plan'))
    .description("let a paused plan's backfill go on from its checkpoint")
    .action(async (name: string, o: CommonOptions) =>
      run(o, async (output) => {
        said(output, name, await resume(name, runOptions(o)), 'resumed: the backfill goes on at its next look (within a second)');
        return {};
      }),
    );
}
