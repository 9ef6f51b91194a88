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
 * The two kinds of server a benchmark compares on: `durable`, where every
 * commit waits for its WAL flush and pages are checksummed and fully logged
 * after a checkpoint (production's settings), and `cpu-bound`, with
 * `fsync = off`, `synchronous_commit = off` and `full_page_writes = off`:
 * nothing waits for the disk, which is how a server with a fast disk and a
 * warm cache behaves, and where CPU costs such as a trigger's show most.
 */
export type ServerKind = 'durable' | 'cpu-bound';

/** The server settings of each {@link ServerKind}, on top of the shared ones. */
const KIND_FLAGS: Readonly<Record<ServerKind, readonly string[]>> = {
  durable: [],
  'cpu-bound': ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
};

/**
 * `BENCH_DATABASE_URL` when set (whatever its settings: `kind` is then only
 * a label); otherwise an embedded PostgreSQL of `kind` (durable: fsync and
 * full_page_writes on, unlike the test server's), a 256 MB buffer cache
 * and max_wal_size 4 GB so a checkpoint does not land in one measurement
 * and not the other.
 */
export async function benchServer(kind: ServerKind = 'durable'): Promise<BenchServer> {
  const url = process.env.BENCH_DATABASE_URL;
  if (url) return { adminUrl: url, description: `BENCH_DATABASE_URL (as ${kind})`, stop: async () => undefined };
  const flags = ['-c', 'shared_buffers=256MB', '-c', 'max_wal_size=4GB', '-c', 'max_connections=50', ...KIND_FLAGS[kind]];
  const server = await startEmbedded({ flags, prefix: `pgshift-bench-${kind}` });
  return { adminUrl: server.adminUrl, description: `${kind} embedded PostgreSQL (${flags.filter((f) => f !== '-c').join(' ')})`, stop: server.stop };
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
