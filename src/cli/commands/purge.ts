import type { Command } from 'commander';
import { purge } from '../../api/purge.js';
import { loadPlans } from '../../plan/load.js';
import { runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import type { Run } from './types.js';

/** `migrate plan purge PLAN`: drop the old columns contract archived now, not after `contract.keep`. */
export function purgeCommand(plan: Command, run: Run): void {
  withCommonOptions(plan.command('purge').argument('<plan>', 'plan name'))
    .description("drop the old columns the plan's contract archived, now rather than after contract.keep; contract can then no longer be rolled back")
    .action(async (name: string, o: CommonOptions) =>
      run(o, async (output) => {
        const [p] = await loadPlans(o.dir, [name]);
        const r = await purge(p!, runOptions(o));
        output.result(
          { event: 'purge', plan: name, purged: r.purged },
          r.purged.length ? `${name}: dropped ${r.purged.map((c) => c.archive).join(', ')}` : `${name}: nothing to do (already purged)`,
        );
        return {};
      }),
    );
}
