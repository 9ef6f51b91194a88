import { setTimeout as sleep } from 'node:timers/promises';
import { REPLICA_LAG_POLL_MS } from '../defaults.js';
import type { Client } from '../db/client.js';
import type { Logger } from '../log.js';

/** One streaming replica as the primary sees it in `pg_stat_replication`. */
export interface ReplicaLag {
  /** application_name, else client address, else walsender pid. */
  readonly name: string;
  /** Replay lag in milliseconds; null when this session may not see it (needs pg_monitor / pg_read_all_stats). */
  readonly lagMs: number | null;
}

/**
 * The lag of every replica streaming from this server. `replay_lag` is the
 * time between WAL being flushed here and the standby reporting it applied;
 * PostgreSQL keeps showing the last measurement until the standby has been
 * idle and caught up for a status interval, so a standby that has replayed
 * everything we wrote (replay_lsn at our current WAL position) counts as 0.
 * Falls back to flush/write lag when replay lag is not yet measured.
 */
export async function replicaLags(client: Client): Promise<ReplicaLag[]> {
  const { rows } = await client.query<{ name: string; visible: boolean; lag_ms: number | null }>(
    `SELECT coalesce(nullif(application_name, ''), client_addr::text, pid::text) AS name,
            state IS NOT NULL AS visible,
            CASE WHEN replay_lsn IS NOT NULL AND replay_lsn >= pg_current_wal_lsn() THEN 0
                 ELSE extract(epoch FROM coalesce(replay_lag, flush_lag, write_lag, interval '0')) * 1000
            END::float8 AS lag_ms
       FROM pg_stat_replication`,
  );
  return rows.map((r) => ({ name: r.name, lagMs: r.visible ? r.lag_ms : null }));
}

/** What `waitForReplicas` reports while it waits (null once it stops waiting). */
export type WaitNotice = (reason: string | null) => void;

/**
 * Return once no replica lags more than `maxLagMs`; while one does, poll and
 * say so (a warning when the wait starts and every 30 s, an info line when it
 * ends). Runs between batches, outside any transaction, so the wait holds no
 * locks and no snapshot.
 */
export async function waitForReplicas(client: Client, maxLagMs: number, log: Logger, notice: WaitNotice, warnedHidden: { value: boolean }): Promise<void> {
  let waitingSince: number | null = null;
  let lastWarned = 0;
  for (;;) {
    const lags = await replicaLags(client);
    if (!warnedHidden.value && lags.some((l) => l.lagMs === null)) {
      warnedHidden.value = true;
      log.warn('replica lag is not visible to this role (grant it pg_monitor): max_replica_lag cannot be enforced');
    }
    const behind = lags.filter((l) => l.lagMs !== null && l.lagMs > maxLagMs);
    if (!behind.length) {
      if (waitingSince !== null) {
        log.info({ waitedMs: Date.now() - waitingSince }, `replicas caught up after ${seconds(Date.now() - waitingSince)}; backfill continues`);
        notice(null);
      }
      return;
    }
    const what = behind.map((l) => `${l.name} ${seconds(l.lagMs!)}`).join(', ');
    const reason = `waiting for replica lag (${what}) to fall under max_replica_lag ${seconds(maxLagMs)}`;
    const now = Date.now();
    waitingSince ??= now;
    if (now - lastWarned >= 30_000) {
      lastWarned = now;
      log.warn({ replicas: behind, maxReplicaLagMs: maxLagMs }, reason);
    }
    notice(reason);
    await sleep(REPLICA_LAG_POLL_MS);
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
