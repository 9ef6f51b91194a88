import { type Command, InvalidArgumentError, Option } from 'commander';
import { ExitCode } from '../../errors.js';
import { loadPlans } from '../../plan/load.js';
import { isPhase, PHASES, type Phase } from '../../phases/phases.js';
import { rehearse } from '../../rehearse/rehearse.js';
import { renderRehearsal } from '../render-rehearsal.js';
import { runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import type { Run } from './types.js';

interface RehearseFlags extends CommonOptions {
  readonly old: string;
  readonly new: string;
  readonly setup?: string;
  readonly rows: number;
  readonly newFrom: Phase;
}

const wholeNumber = (value: string): number => {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('needs a whole number');
  return Number(value);
};

const phase = (value: string): Phase => {
  if (isPhase(value)) return value;
  throw new InvalidArgumentError(`must be one of ${PHASES.join(', ')}`);
};

/** `migrate plan rehearse PLAN... --old <cmd> --new <cmd> [--setup <cmd>] [--rows N]` */
export function rehearseCommand(plan: Command, run: Run): void {
  withCommonOptions(plan.command('rehearse').argument('<plans...>', 'plan names, rehearsed together in file-name order'), { guards: true })
    .description("run the old and the new release's tests against every phase of a scratch database, forward and back")
    .requiredOption('--old <command>', "shell command running the old release's tests")
    .requiredOption('--new <command>', "shell command running the new release's tests")
    .option('--setup <command>', 'shell command building the schema first (e.g. the app’s migrations)')
    .option('--rows <n>', "synthetic rows to insert into each plan's table after setup", wholeNumber, 0)
    .addOption(new Option('--new-from <phase>', 'first phase at which the new release runs').argParser(phase).default('switch-read'))
    .action(async (names: string[], o: RehearseFlags) =>
      run(o, async (output) => {
        const plans = await loadPlans(o.dir, names);
        // Ctrl-C and SIGTERM (a cancelled CI job) abort the rehearsal, which drops its scratch database before the exit.
        const controller = new AbortController();
        const onSignal = (signal: NodeJS.Signals): void => controller.abort(signal);
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          const { databaseUrl, stateSchema, guards, log } = runOptions(o);
          const result = await rehearse(plans, {
            old: o.old,
            new: o.new,
            setup: o.setup,
            databaseUrl,
            rows: o.rows,
            newFrom: o.newFrom,
            stateSchema,
            guards,
            log,
            signal: controller.signal,
          });
          if (output.json) output.document(result);
          else output.result({}, renderRehearsal(result));
          return { exitCode: result.ok ? ExitCode.ok : ExitCode.failed };
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }),
    );
}
