import type { Command } from 'commander';
import { verify } from '../../api/verify.js';
import { ExitCode } from '../../errors.js';
import { loadPlans } from '../../plan/load.js';
import { runOnFleet, targetsOf, withFleetOptions, type FleetOptions } from '../fleet.js';
import { runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import type { Run } from './types.js';

/** `migrate plan verify PLAN`: rows where old and new disagree (exit 4), and drift (exit 2). Changes nothing. */
export function verifyCommand(plan: Command, run: Run): void {
  const command = withCommonOptions(plan.command('verify').argument('<plan>', 'plan name')).description(
    'count rows where old and new columns disagree (exit 4 when any)',
  );
  withFleetOptions(command).action(async (name: string, o: CommonOptions & FleetOptions) =>
    run(o, async (output) => {
      const [p] = await loadPlans(o.dir, [name]);
      const targets = await targetsOf(o);
      if (targets.length > 1) {
        return runOnFleet(
          output,
          targets,
          o,
          (url) => verify(p!, runOptions(o, url)),
          (r) => [{ plan: name, phase: null, outcome: `${r.differing} row(s) differ`, exitCode: r.differing ? ExitCode.verificationFailed : ExitCode.ok }],
        );
      }
      const r = await verify(p!, runOptions(o));
      output.result(
        { event: 'verify', plan: name, differing: r.differing, sample_keys: r.sampleKeys, drift: r.drift },
        (r.differing ? `${name}: ${r.differing} row(s) differ, e.g. key ${r.sampleKeys.map((k) => k.join(',')).join('; ')}` : `${name}: 0 rows differ`) +
          r.drift.map((d) => `\n${name}: drift: ${d.message}`).join(''),
      );
      // Rows that differ say more than drift; drift alone is a state to fix before moving the plan (exit 2).
      return r.differing ? { exitCode: ExitCode.verificationFailed } : r.drift.length ? { exitCode: ExitCode.invalidInput } : {};
    }),
  );
}
