import type { Command } from 'commander';
import { apply, type PlanOutcome } from '../../api/apply.js';
import { waitingText } from '../../api/queue.js';
import { exitCodeOf } from '../../errors.js';
import { loadPlans, readPlans } from '../../plan/load.js';
import { runOnFleet, targetsOf, withFleetOptions, type FleetOptions, type FleetRow } from '../fleet.js';
import type { Phase } from '../../phases/phases.js';
import { phaseArgument, runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import type { Output } from '../output.js';
import { progressReporter } from '../progress.js';
import type { Run } from './types.js';

/** `migrate plan apply [PLAN...] --phase next|<phase>` */
export function applyCommand(plan: Command, run: Run): void {
  const command = withCommonOptions(plan.command('apply').argument('[plans...]', 'plan names (default: every plan in --dir that is not complete)'), {
    guards: true,
    force: true,
    strict: true,
    hooks: true,
  })
    .description('advance each plan one phase, or up to and including <phase>')
    .option('--phase <phase>', 'next, or a phase name to apply up to', phaseArgument('next'), 'next');
  withFleetOptions(command).action(async (names: string[], o: CommonOptions & FleetOptions & { phase: Phase | 'next' }) =>
    run(o, async (output) => {
      const plans = await loadPlans(o.dir, names);
      // The whole folder decides the order, also when only some plans are named.
      const queue = names.length ? (await readPlans(o.dir)).plans : plans;
      const targets = await targetsOf(o);
      if (targets.length > 1)
        return runOnFleet(
          output,
          targets,
          o,
          (url) => apply(plans, o.phase, { ...runOptions(o, url), queue }),
          (outcomes) => outcomes.map(fleetRow),
        );
      const progress = progressReporter(output);
      try {
        const outcomes = await apply(plans, o.phase, { ...runOptions(o), queue, onProgress: progress.onProgress });
        for (const outcome of outcomes) report(output, 'apply', outcome);
        return { errors: outcomes.flatMap((x) => (x.error ? [x.error] : [])) };
      } finally {
        progress.stop();
      }
    }),
  );
}

/** One plan's outcome of apply or rollback as a line of a fleet's table. */
export function fleetRow(x: PlanOutcome): FleetRow {
  return {
    plan: x.plan,
    phase: x.to,
    outcome: x.error
      ? `failed: ${x.error.message.split('\n')[0]}`
      : x.phases.length
        ? `did ${x.phases.join(', ')}`
        : x.waiting
          ? waitingText(x.waiting)
          : 'nothing to do',
    exitCode: x.error ? exitCodeOf(x.error) : 0,
  };
}

/** Print one plan's outcome of apply or rollback. */
export function report(output: Output, verb: 'apply' | 'rollback', x: PlanOutcome): void {
  const did = verb === 'apply' ? 'applied' : 'rolled back';
  const text = x.phases.length
    ? `${x.plan}: ${did} ${x.phases.join(', ')}; now at ${x.to ?? 'no phase'}`
    : x.error
      ? `${x.plan}: nothing ${did}`
      : x.waiting
        ? `${x.plan}: ${waitingText(x.waiting)}`
        : `${x.plan}: nothing to do (at ${x.to ?? 'no phase'})`;
  const purged = x.purged?.length ? `; contract.keep ran out: dropped ${x.purged.map((c) => c.archive).join(', ')}` : '';
  output.result(
    {
      event: verb,
      plan: x.plan,
      from: x.from,
      to: x.to,
      phases: x.phases,
      ok: !x.error,
      ...(x.error ? { error: x.error.message } : {}),
      ...(x.waiting ? { waiting: { behind: x.waiting.behind, at: x.waiting.at, status: x.waiting.status } } : {}),
      ...(x.purged?.length ? { purged: x.purged } : {}),
    },
    text + purged,
  );
}
