import type { Command } from 'commander';
import { tune } from '../../api/steer.js';
import { duration, integer, runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import { said } from '../steered.js';
import type { Run } from './types.js';

/** `migrate plan tune PLAN [--target-batch-ms N] [--pause D] [--workers N] [--max-replica-lag D]` */
export function tuneCommand(plan: Command, run: Run): void {
  withCommonOptions(plan.command('tune').argument('<plan>', 'the plan whose backfill to retune'))
    .description("change a running backfill's settings from its next batch on")
    .option('--target-batch-ms <n>', 'adaptive batch size aims at this duration (0 = fixed batches)', integer)
    .option('--pause <duration>', 'sleep between batches', duration('--pause'))
    .option('--workers <n>', 'workers walking at once (at most the ranges the backfill was split into when it started)', integer)
    .option('--max-replica-lag <duration>', 'wait while a replica lags more than this', duration('--max-replica-lag'))
    .action(async (name: string, o: CommonOptions & { targetBatchMs?: number; pause?: number; workers?: number; maxReplicaLag?: number }) =>
      run(o, async (output) => {
        const tuning = { targetBatchMs: o.targetBatchMs, pauseMs: o.pause, workers: o.workers, maxReplicaLagMs: o.maxReplicaLag };
        said(output, name, await tune(name, tuning, runOptions(o)), 'tuned: the backfill uses these from its next batch');
        return {};
      }),
    );
}
