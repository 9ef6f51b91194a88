import { DEFAULT_FLEET_CONCURRENCY } from '../defaults.js';
import { ExitCode, exitCodeOf } from '../errors.js';

/** How one target ended. */
export interface TargetOutcome<T> {
  readonly target: string;
  /** What the command returned, when it ran. */
  readonly result?: T | undefined;
  /** Its error (the command's own per-plan errors are in `result`). */
  readonly error?: Error | undefined;
  /** The target's exit code: 0 when it did its work. */
  readonly exitCode: number;
  /** Not started: an earlier target failed and `failFast` was set. */
  readonly skipped: boolean;
}

/**
 * The order in which a fleet's exit codes are "worse": a failure (1) is the
 * worst, then rows that differ (4), a lock given up on (3), invalid input
 * (2), a plan busy elsewhere (5), and done (0).
 */
const SEVERITY: readonly number[] = [ExitCode.ok, ExitCode.busy, ExitCode.invalidInput, ExitCode.lockGaveUp, ExitCode.verificationFailed, ExitCode.failed];

/** The worst of some exit codes, by `SEVERITY`. */
export function worstExitCode(codes: readonly number[]): number {
  return codes.reduce((worst, code) => (SEVERITY.indexOf(code) > SEVERITY.indexOf(worst) ? code : worst), ExitCode.ok as number);
}

/**
 * Run `fn` once per target database, at most `concurrency` at a time. Each
 * target keeps its own state, plan lock and outcome: one failing does not
 * stop the others, unless `failFast`, which starts no target after the
 * first failure (those already running finish).
 */
export async function runFleet<T>(
  targets: readonly string[],
  fn: (target: string) => Promise<{ result: T; exitCode: number }>,
  { concurrency = DEFAULT_FLEET_CONCURRENCY, failFast = false }: { concurrency?: number; failFast?: boolean } = {},
): Promise<TargetOutcome<T>[]> {
  const outcomes: TargetOutcome<T>[] = new Array(targets.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const i = next++;
      const target = targets[i]!;
      if (failed && failFast) {
        outcomes[i] = { target, exitCode: ExitCode.ok, skipped: true };
        continue;
      }
      try {
        const { result, exitCode } = await fn(target);
        outcomes[i] = { target, result, exitCode, skipped: false };
      } catch (error) {
        outcomes[i] = { target, error: error as Error, exitCode: exitCodeOf(error), skipped: false };
      }
      if (outcomes[i]!.exitCode !== ExitCode.ok) failed = true;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, targets.length)) }, worker));
  return outcomes;
}
