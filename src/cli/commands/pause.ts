import type { Command } from 'commander';
import { pause } from '../../api/steer.js';
import { runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import { said } from '../steered.js';
import type { Run } from './types.js';

/** `migrate plan pause PLAN` */
export function pauseCommand(plan: Command, run: Run): void {
  withCommonOptions(plan.command('pause').argument('<plan>', 'the plan whose backfill stops before its next batch'))
    .description("pause a plan's backfill, from any machine; it holds across runner restarts until resume")
    .action(async (name: string, o: CommonOptions) =>
      run(o, async (output) => {
        said(output, name, await pause(name, runOptions(o)), 'paused: the backfill writes no batch until `migrate plan resume`');
        return {};
      }),
    );
}
