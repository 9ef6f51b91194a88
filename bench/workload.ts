import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

/** Latencies of one workload run, in milliseconds. */
export interface WorkloadResult {
  readonly reads: number[];
  readonly writes: number[];
  readonly errors: number;
}

/**
 * A paced point-read/point-write workload, like an application's: each of
 * `clients` connections does `ratePerClient` operations a second, half
 * `SELECT ... WHERE id = $1`, half an old-code `UPDATE` of the column being
 * split (so the sync trigger fires), on random ids in 1..rows. Paced rather
 * than flat out, so it measures what a user would wait, not how much CPU the
 * workload can take from the backfill.
 */
export function startWorkload(url: string, table: string, rows: number, clients: number, ratePerClient: number): { stop(): Promise<WorkloadResult> } {
  let running = true;
  const result = { reads: [] as number[], writes: [] as number[], errors: 0 };
  const interval = 1000 / ratePerClient;
  const loops = Array.from({ length: clients }, async () => {
    const client = new pg.Client({ connectionString: url, application_name: 'bench workload' });
    client.on('error', () => undefined);
    await client.connect();
    try {
      while (running) {
        const started = performance.now();
        const id = 1 + Math.floor(Math.random() * rows);
        try {
          if (Math.random() < 0.5) {
            await client.query(`SELECT * FROM ${table} WHERE id = $1`, [id]);
            result.reads.push(performance.now() - started);
          } else {
            await client.query(`UPDATE ${table} SET full_name = $2 WHERE id = $1`, [id, `Renamed${id} Person${id}`]);
            result.writes.push(performance.now() - started);
          }
        } catch {
          result.errors++;
        }
        const left = interval - (performance.now() - started);
        if (left > 0) await sleep(left);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return result;
    },
  };
}

/** The p-th percentile (0–100) of samples, nearest rank. */
export function percentile(samples: readonly number[], p: number): number {
  if (!samples.length) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
