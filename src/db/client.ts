import os from 'node:os';
import pg from 'pg';
import { VERSION } from '../version.js';

/** A connected client; pgshift uses plain `pg` clients, never a pool, for DDL. */
export type Client = pg.Client;

/** Where to connect: a URL, or undefined for libpq environment variables. */
export interface ConnectionOptions {
  readonly databaseUrl?: string | undefined;
  /** Shown in `pg_stat_activity.application_name`, so blockers and holders can be named. */
  readonly applicationName?: string | undefined;
}

/** Who is running pgshift, for events and for `application_name`. */
export function actor(): string {
  return `${os.userInfo().username}@${os.hostname()}`;
}

/** Open one client. `DATABASE_URL` is the fallback, then libpq's `PG*` variables. */
export async function connect(options: ConnectionOptions = {}): Promise<Client> {
  const url = options.databaseUrl ?? process.env.DATABASE_URL;
  const client = new pg.Client({
    ...(url ? { connectionString: url } : {}),
    application_name: (options.applicationName ?? `pgshift ${VERSION} ${actor()}`).slice(0, 63),
  });
  // An idle client whose server goes away emits 'error'; without a listener Node would crash.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/**
 * A connection the runner can do without: null unless it connects and
 * answers a query within `waitMs`. Behind a pooler whose pool is full,
 * connecting succeeds at once and the first query waits in the pooler's
 * queue (see `SPARE_CONNECTION_WAIT_MS`), so the connection counts only once
 * it has answered.
 */
export async function connectSpare(options: ConnectionOptions, waitMs: number): Promise<Client | null> {
  let client: Client | null = null;
  const answered = (async (): Promise<Client> => {
    client = await connect(options);
    await client.query('SELECT 1');
    return client;
  })();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), waitMs)));
  const result = await Promise.race([answered.catch(() => null), late]);
  clearTimeout(timer);
  if (result) return result;
  // Not in time, or failed: whatever was opened goes (a connection made later is closed as soon as it is).
  answered.then(
    (c) => c.end().catch(() => undefined),
    () => undefined,
  );
  await (client as Client | null)?.end().catch(() => undefined);
  return null;
}

/** Run `fn` with a fresh client, closed afterwards whatever happens. */
export async function withClient<T>(options: ConnectionOptions, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await connect(options);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Run `fn` inside BEGIN/COMMIT, rolling back on any error. */
export async function withTransaction<T>(client: Client, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/**
 * Run `fn` in a transaction that is always rolled back, whatever it did or
 * threw: for reads and probes that must leave nothing behind.
 */
export async function withRolledBackTransaction<T>(client: Client, fn: () => Promise<T>, { readOnly = false } = {}): Promise<T> {
  await client.query(readOnly ? 'BEGIN READ ONLY' : 'BEGIN');
  try {
    return await fn();
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

const serverPids = new WeakMap<Client, number>();

/**
 * Remember the server process id a client's session runs in, as
 * `pg_backend_pid()` reported it. Through a pooler the id sent at startup is
 * the pooler's own, not a PostgreSQL backend's.
 */
/**
 * Run `fn` inside a savepoint of the open transaction. An error rolls back to
 * the savepoint, so the transaction stays usable, and is thrown again. On
 * success the savepoint is released, or rolled back with `undo` (a trial
 * whose effects must not stay, e.g. a probe on a temporary table).
 */
export async function inSavepoint<T>(client: Client, fn: () => Promise<T>, { undo = false } = {}): Promise<T> {
  await client.query('SAVEPOINT pgshift_savepoint');
  try {
    const result = await fn();
    await client.query(undo ? 'ROLLBACK TO SAVEPOINT pgshift_savepoint' : 'RELEASE SAVEPOINT pgshift_savepoint');
    return result;
  } catch (error) {
    await client.query('ROLLBACK TO SAVEPOINT pgshift_savepoint');
    throw error;
  }
}

/** Is this error worth another attempt: a lock not granted in time, or a deadlock? */
export function isLockConflict(error: unknown): boolean {
  const code = sqlState(error);
  return code === SqlState.lockNotAvailable || code === SqlState.deadlockDetected;
}

export function rememberBackendPid(client: Client, pid: number): void {
  serverPids.set(client, pid);
}

/**
 * The server process id of a connected client (what pg_stat_activity calls
 * `pid`): the one `pg_backend_pid()` reported when the runner checked its
 * session, else the one sent at startup.
 */
export function backendPid(client: Client): number {
  return serverPids.get(client) ?? (client as unknown as { processID: number }).processID;
}

/**
 * A query sent with the extended protocol (Parse/Bind/Execute) even without
 * parameters: the server then refuses a second statement after a `;`.
 */
export function singleStatement(text: string): pg.QueryConfig {
  return { text, queryMode: 'extended' } as pg.QueryConfig;
}

/** The SQLSTATE of a database error, if it is one. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** SQLSTATEs pgshift treats specially. */
export const SqlState = {
  lockNotAvailable: '55P03',
  queryCanceled: '57014',
  deadlockDetected: '40P01',
  serializationFailure: '40001',
  undefinedTable: '42P01',
  uniqueViolation: '23505',
} as const;
