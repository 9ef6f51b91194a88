import { startEmbedded } from '../test/helpers/server.js';

/** A server for a benchmark run and how to stop it. */
export interface BenchServer {
  readonly adminUrl: string;
  readonly description: string;
  stop(): Promise<void>;
}

/**
 * `BENCH_DATABASE_URL` when set; otherwise an embedded PostgreSQL with
 * durable settings (fsync and full_page_writes on, unlike the test server's),
 * a 256 MB buffer cache and max_wal_size 4 GB so a checkpoint does not land
 * in one measurement and not the other.
 */
export async function benchServer(): Promise<BenchServer> {
  const url = process.env.BENCH_DATABASE_URL;
  if (url) return { adminUrl: url, description: 'BENCH_DATABASE_URL', stop: async () => undefined };
  const flags = ['-c', 'shared_buffers=256MB', '-c', 'max_wal_size=4GB', '-c', 'max_connections=50'];
  const server = await startEmbedded({ flags, prefix: 'pgshift-bench' });
  return { adminUrl: server.adminUrl, description: `embedded PostgreSQL (${flags.filter((f) => f !== '-c').join(' ')})`, stop: server.stop };
}
