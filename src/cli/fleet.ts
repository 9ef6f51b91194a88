import type { Command } from 'commander';
import { runFleet, worstExitCode, type TargetOutcome } from '../api/fleet.js';
import { DEFAULT_FLEET_CONCURRENCY } from '../defaults.js';
import { exitCodeOf } from '../errors.js';
import { readTargetsFile, targetLabel } from '../fleet/targets.js';
import { integer, type CommonOptions } from './options.js';
import { table, type Output } from './output.js';
import type { CommandResult } from './commands/types.js';

/** The options of a command that can run on many databases. */
export interface FleetOptions {
  readonly targets?: string;
  readonly concurrency: number;
  readonly failFast?: boolean;
}

/** Add `--targets`, `--concurrency` and `--fail-fast`. */
export function withFleetOptions(command: Command): Command {
  return command
    .option('--targets <file>', 'run on every database in the file: one URL or libpq service name per line')
    .option('--concurrency <n>', 'databases worked on at once, with several targets', integer, DEFAULT_FLEET_CONCURRENCY)
    .option('--fail-fast', 'with several targets, start no other database after one fails');
}

/** Every database the command was pointed at: each `--database-url`, then the `--targets` file's. */
export async function targetsOf(o: CommonOptions & FleetOptions): Promise<string[]> {
  return [...(o.databaseUrl ?? []), ...(o.targets ? await readTargetsFile(o.targets) : [])];
}

/** One line of a fleet's table: a plan on a target. */
export interface FleetRow {
  readonly plan: string;
  readonly phase: string | null;
  readonly outcome: string;
  readonly exitCode: number;
}

/**
 * Run a command on every target and print one table (or its JSON twin):
 * target × plan × phase × outcome. The exit code is the worst outcome.
 */
export async function runOnFleet<T>(
  output: Output,
  targets: readonly string[],
  o: FleetOptions,
  fn: (url: string) => Promise<T>,
  rowsOf: (result: T) => FleetRow[],
): Promise<CommandResult> {
  const outcomes = await runFleet(
    targets,
    async (url) => {
      const result = await fn(url);
      return { result, exitCode: worstExitCode(rowsOf(result).map((r) => r.exitCode)) };
    },
    { concurrency: o.concurrency, failFast: o.failFast },
  );
  const rows = outcomes.flatMap((t) => lines(t, rowsOf));
  if (output.json) output.document(rows);
  else
    output.result(
      {},
      table(
        ['target', 'plan', 'phase', 'outcome'],
        rows.map((r) => [r.target, r.plan, r.phase ?? '-', r.outcome]),
      ),
    );
  return { exitCode: worstExitCode(rows.map((r) => r.exitCode)) };
}

function lines<T>(t: TargetOutcome<T>, rowsOf: (result: T) => FleetRow[]): (FleetRow & { target: string })[] {
  const target = targetLabel(t.target);
  if (t.skipped) return [{ target, plan: '-', phase: null, outcome: 'skipped (--fail-fast)', exitCode: 0 }];
  if (t.error) return [{ target, plan: '-', phase: null, outcome: `error: ${t.error.message.split('\n')[0]}`, exitCode: exitCodeOf(t.error) }];
  return rowsOf(t.result as T).map((r) => ({ target, ...r }));
}
