import { Command, CommanderError } from 'commander';
import { ExitCode, exitCodeOf, PgshiftError } from '../errors.js';
import { VERSION } from '../version.js';
import { inSpan, startTelemetry, stopTelemetry } from '../telemetry.js';
import { applyCommand } from './commands/apply.js';
import { detectCommand } from './commands/detect.js';
import { lintCommand } from './commands/lint.js';
import { logCommand } from './commands/log.js';
import { pauseCommand } from './commands/pause.js';
import { resumeCommand } from './commands/resume.js';
import { tuneCommand } from './commands/tune.js';
import { newCommand } from './commands/new.js';
import { rehearseCommand } from './commands/rehearse.js';
import { rollbackCommand } from './commands/rollback.js';
import { purgeCommand } from './commands/purge.js';
import { showCommand } from './commands/show.js';
import { statusCommand } from './commands/status.js';
import type { Run } from './commands/types.js';
import { verifyCommand } from './commands/verify.js';
import { createOutput, redactorFor } from './output.js';
import { wantsJson } from './options.js';

/**
 * The CLI. The one place that prints results and picks the exit code; it
 * returns the code instead of calling process.exit, so it can run in tests.
 */
export async function main(argv: readonly string[]): Promise<number> {
  let exitCode: number = ExitCode.ok;
  const program = new Command('migrate')
    .description('pgshift: zero-downtime breaking column changes for PostgreSQL, as expand/contract phases')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError();
  const plan = program.command('plan').description('apply, inspect and roll back plans').exitOverride();
  // The command's name for its span: commander knows it only once it has picked the subcommand.
  let command = 'plan';
  plan.hook('preAction', (_plan, action) => {
    command = `plan ${action.name()}`;
  });

  const run: Run = async (o, fn) => {
    const output = createOutput(wantsJson(o), redactorFor([...(o.databaseUrl ?? []), process.env.DATABASE_URL]));
    try {
      const result = await inSpan(`migrate ${command}`, { 'pgshift.command': command }, () => fn(output));
      for (const error of result.errors ?? []) output.error(error.message, { code: exitCodeOf(error) });
      exitCode = result.errors?.length ? exitCodeOf(result.errors[0]) : (result.exitCode ?? ExitCode.ok);
    } catch (error) {
      output.error(error instanceof PgshiftError ? error.message : `${(error as Error).message ?? error}`, { code: exitCodeOf(error) });
      exitCode = exitCodeOf(error);
    }
  };

  applyCommand(plan, run);
  statusCommand(plan, run);
  rollbackCommand(plan, run);
  purgeCommand(plan, run);
  verifyCommand(plan, run);
  showCommand(plan, run);
  lintCommand(plan, run);
  logCommand(plan, run);
  pauseCommand(plan, run);
  resumeCommand(plan, run);
  tuneCommand(plan, run);
  detectCommand(plan, run);
  newCommand(plan, run);
  rehearseCommand(plan, run);
  for (const c of plan.commands) c.exitOverride();

  // Only when OTEL_EXPORTER_OTLP_ENDPOINT (or a per-signal one) is set; otherwise nothing of OpenTelemetry is loaded.
  await startTelemetry().catch((error: unknown) => process.stderr.write(`warning: OpenTelemetry not started: ${(error as Error).message}\n`));
  try {
    await program.parseAsync(argv as string[]);
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? ExitCode.ok : ExitCode.invalidInput;
    }
    throw error;
  } finally {
    await stopTelemetry();
  }
  return exitCode;
}
