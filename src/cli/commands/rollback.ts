import type { Command } from 'commander';
import { rollback } from '../../api/rollback.js';
import { loadPlans } from '../../plan/load.js';
import type { Phase } from '../../phases/phases.js';
import { phaseArgument, runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import { fleetRow, report } from './apply.js';
import { runOnFleet, targetsOf, withFleetOptions, type FleetOptions } from '../fleet.js';
import type { Run } from './types.js';

/** `migrate plan rollback PLAN [--phase current|<phase>]` */
export function rollbackCommand(plan: Command, run: Run): void {
  const command = withCommonOptions(plan.command('rollback').argument('<plan>', 'plan name'), { guards: true, force: true, hooks: true })
    .description('undo the current phase, or every phase down to and including <phase>')
    .option('--phase <phase>', 'current, or the lowest phase to undo', phaseArgument('current'), 'current');
  withFleetOptions(command).action(async (name: string, o: CommonOptions & FleetOptions & { phase: Phase | 'current' }) =>
    run(o, async (output) => {
      const [plan] = await loadPlans(o.dir, [name]);
      const targets = await targetsOf(o);
      if (targets.length > 1)
        return runOnFleet(
          output,
          targets,
          o,
          (url) => rollback(plan!, o.phase, runOptions(o, url)),
          (x) => [fleetRow(x)],
        );
      const outcome = await rollback(plan!, o.phase, runOptions(o));
      report(output, 'rollback', outcome);
      return { errors: outcome.error ? [outcome.error] : [] };
    }),
  );
}
