import pg from 'pg';
import { ident } from '../src/db/ident.js';
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

/** A database of its own on the bench server, with a connection to the server (to drop it after) and one to it. */
export interface ScratchDatabase {
  readonly admin: pg.Client;
  readonly db: pg.Client;
  readonly dbUrl: string;
  /** End the connection to it, drop it (forcing other sessions off), end the server connection; errors ignored. */
  drop(): Promise<void>;
}

/** Create database `name` on `adminUrl`'s server and connect to both; `drop()` undoes it all. */
export async function scratchDatabase(adminUrl: string, name: string): Promise<ScratchDatabase> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${ident(name)}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const dbUrl = url.toString();
  const db = new pg.Client({ connectionString: dbUrl });
  await db.connect();
  const drop = async (): Promise<void> => {
    await db.end().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  };
  return { admin, db, dbUrl, drop };
}
