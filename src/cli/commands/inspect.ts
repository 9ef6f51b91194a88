import type { Command } from 'commander';
import { lint } from '../../api/lint.js';
import { show } from '../../api/show.js';
import { verify } from '../../api/verify.js';
import { ExitCode } from '../../errors.js';
import { loadPlans, readPlans } from '../../plan/load.js';
import { runOnFleet, targetsOf, withFleetOptions, type FleetOptions } from '../fleet.js';
import type { Phase } from '../../phases/phases.js';
import type { Step } from '../../changes/steps.js';
import { phaseArgument, runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import type { Run } from './types.js';

/** `verify`, `show` and `lint`: the commands that change nothing. */
export function inspectCommands(plan: Command, run: Run): void {
  const verifyCommand = withCommonOptions(plan.command('verify').argument('<plan>', 'plan name')).description(
    'count rows where old and new columns disagree (exit 4 when any)',
  );
  withFleetOptions(verifyCommand).action(async (name: string, o: CommonOptions & FleetOptions) =>
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

  withCommonOptions(plan.command('show').argument('<plan>', 'plan name'))
    .description('the SQL each phase would run, with its locks, without running it')
    .option('--phase <phase>', 'only this phase', phaseArgument('all'))
    .action(async (name: string, o: CommonOptions & { phase?: Phase | 'all' }) =>
      run(o, async (output) => {
        const [p] = await loadPlans(o.dir, [name]);
        const phases = await show(p!, o.phase === 'all' ? undefined : o.phase, runOptions(o));
        for (const ph of phases) {
          output.result(
            { event: 'show', plan: name, phase: ph.phase, apply: ph.apply, rollback: ph.rollback },
            [`-- phase ${ph.phase}: apply`, ...ph.apply.map(stepText), `-- phase ${ph.phase}: rollback`, ...ph.rollback.map(stepText), ''].join('\n'),
          );
        }
        return {};
      }),
    );

  withCommonOptions(plan.command('lint').argument('[plans...]', 'plan names (default: all)'), { strict: true })
    .description('validate plan files and check them against the live catalog')
    .action(async (names: string[], o: CommonOptions) =>
      run(o, async (output) => {
        const { plans, problems } = await readPlans(o.dir, names);
        const results = await lint(plans, runOptions(o), problems);
        for (const r of results) {
          output.result({ event: 'lint', plan: r.plan, outcome: r.outcome }, `${r.plan}: ok (${r.outcome.replace('_', ' ')})`);
          for (const w of r.warnings) output.result({ event: 'warning', plan: r.plan, message: w }, `${r.plan}: warning: ${w}`);
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
