import { setTimeout as sleep } from 'node:timers/promises';
import { REPLICA_LAG_POLL_MS } from '../defaults.js';
import type { Client } from '../db/client.js';
import type { Logger } from '../log.js';

/** One streaming replica as the primary sees it in `pg_stat_replication`. */
export interface ReplicaLag {
  /** application_name (a standby's cluster_name), else client address, else walsender pid. */
  readonly name: string;
  /** Estimated replay lag in milliseconds; null when this role may not see it (needs pg_monitor / pg_read_all_stats). */
  readonly lagMs: number | null;
}

/** Our own WAL positions over time, to date a replica's replay position. */
const MAX_SAMPLES = 10_000;

/**
 * Measures how far behind each streaming replica is, in time.
 *
 * `pg_stat_replication.replay_lag` alone is not enough: PostgreSQL can only
 * measure it once the standby replays past one of its samples, so a standby
 * whose replay stopped right after it had caught up shows no lag at all
 * (NULL), however long it stays stuck; and after catching up it keeps showing
 * the last figure until idle for a status interval. So the probe also keeps
 * its own samples of `pg_current_wal_lsn()`, one per call: a replica whose
 * `replay_lsn` is still before the position we saw at time t is at least
 * now - t behind. The lag is the larger of the two figures, and 0 for a
 * replica that has replayed everything written so far.
 */
export class ReplicaLagProbe {
  private readonly samples: { at: number; lsn: bigint }[] = [];

  constructor(private readonly client: Client) {}

  async lags(): Promise<ReplicaLag[]> {
    const { rows } = await this.client.query<{ name: string | null; visible: boolean; replay: string | null; current: string; lag_ms: number | null }>(
      `SELECT coalesce(nullif(r.application_name, ''), r.client_addr::text, r.pid::text) AS name,
              r.state IS NOT NULL AS visible, r.replay_lsn::text AS replay, w.lsn::text AS current,
              extract(epoch FROM coalesce(r.replay_lag, r.flush_lag, r.write_lag)) * 1000 AS lag_ms
         FROM (SELECT pg_current_wal_lsn() AS lsn) w LEFT JOIN pg_stat_replication r ON true`,
    );
    const now = Date.now();
    const current = parseLsn(rows[0]!.current);
    const newest = this.samples.at(-1);
    if (!newest || current > newest.lsn) this.samples.push({ at: now, lsn: current });
    if (this.samples.length > MAX_SAMPLES) this.samples.shift();
    const lags = rows
      .filter((r) => r.name !== null)
      .map((r): ReplicaLag => {
        if (!r.visible || r.replay === null) return { name: r.name!, lagMs: r.visible ? 0 : null };
        const replay = parseLsn(r.replay);
        if (replay >= current) return { name: r.name!, lagMs: 0 };
        const oldestUnreplayed = this.samples.find((s) => s.lsn > replay);
        const own = oldestUnreplayed ? now - oldestUnreplayed.at : 0;
        return { name: r.name!, lagMs: Math.max(own, Number(r.lag_ms ?? 0)) };
      });
    // Samples every replica has replayed can no longer date anything.
    const replays = rows.filter((r) => r.replay !== null).map((r) => parseLsn(r.replay!));
    const slowest = replays.length ? replays.reduce((a, b) => (a < b ? a : b)) : current;
    while (this.samples.length > 1 && this.samples[0]!.lsn <= slowest && this.samples[1]!.lsn <= slowest) this.samples.shift();
    return lags;
  }
}

/** `16/B374D848` as a number, for comparisons. */
export function parseLsn(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

/** What `waitForReplicas` reports while it waits (null once it stops waiting). */
export type WaitNotice = (reason: string | null) => void;

/**
 * Return once no replica lags more than `maxLagMs`; while one does, poll and
 * say so (a warning when the wait starts and every 30 s, an info line when it
 * ends). Runs between batches, outside any transaction, so the wait holds no
 * locks and no snapshot.
 */
export async function waitForReplicas(
  probe: ReplicaLagProbe,
  maxLagMs: number,
  log: Logger,
  notice: WaitNotice,
  warnedHidden: { value: boolean },
): Promise<void> {
  let waitingSince: number | null = null;
  let lastWarned = 0;
  for (;;) {
    const lags = await probe.lags();
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
