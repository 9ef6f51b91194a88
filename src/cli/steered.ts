import type { Output } from './output.js';
import type { BackfillControl } from '../state/store.js';

/** Print what a pause, resume or tune recorded, with the settings it leaves in force. */
export function said(output: Output, plan: string, c: BackfillControl, text: string): void {
  const settings = [
    c.targetBatchMs !== null ? `target_batch_ms ${c.targetBatchMs}` : null,
    c.pauseMs !== null ? `pause ${c.pauseMs} ms` : null,
    c.workers !== null ? `workers ${c.workers}` : null,
    c.maxReplicaLagMs !== null ? `max_replica_lag ${c.maxReplicaLagMs} ms` : null,
  ].filter(Boolean);
  output.result(
    {
      event: 'steer',
      plan,
      paused: c.paused,
      targetBatchMs: c.targetBatchMs,
      pauseMs: c.pauseMs,
      workers: c.workers,
      maxReplicaLagMs: c.maxReplicaLagMs,
      by: c.changedBy,
    },
    `${plan}: ${text}${settings.length ? ` (${settings.join(', ')})` : ''}`,
  );
}
