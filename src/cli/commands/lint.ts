import type { Command } from 'commander';
import { lint } from '../../api/lint.js';
import { readPlans } from '../../plan/load.js';
import { runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import type { Run } from './types.js';

/** `migrate plan lint [PLAN...]`: plan files validated and checked against the live catalog. Changes nothing. */
export function lintCommand(plan: Command, run: Run): void {
  withCommonOptions(plan.command('lint').argument('[plans...]', 'plan names (default: all)'), { strict: true })
    .description('validate plan files and check them against the live catalog')
    .action(async (names: string[], o: CommonOptions) =>
      run(o, async (output) => {
        const { plans, problems } = await readPlans(o.dir, names);
        const queue = names.length ? (await readPlans(o.dir)).plans : plans;
        const results = await lint(plans, runOptions(o), problems, queue);
        for (const r of results) {
          output.result({ event: 'lint', plan: r.plan, outcome: r.outcome }, `${r.plan}: ok (${r.outcome.replace('_', ' ')})`);
          for (const w of r.warnings) output.result({ event: 'warning', plan: r.plan, message: w }, `${r.plan}: warning: ${w}`);
        }
        return {};
      }),
    );
}
