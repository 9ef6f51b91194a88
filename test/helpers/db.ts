import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, inject } from 'vitest';

/** A fresh database for one test file, dropped when the file ends. */
export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  /** A shared client for assertions and setup. */
  readonly client: pg.Client;
  /** Run SQL on the shared client. */
  sql<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  /** Open another client (the caller ends it). */
  connect(): Promise<pg.Client>;
}

/** Create a fresh database on the run's server (or on the server of `adminUrl`); call at the top of a test file. */
export async function freshDatabase(adminUrl: string = inject('adminUrl')): Promise<TestDatabase> {
  const name = `pgshift_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const client = new pg.Client({ connectionString: url.toString() });
  client.on('error', () => undefined);
  await client.connect();
  const db: TestDatabase = {
    url: url.toString(),
    name,
    client,
    sql: async (text, values) => (await client.query(text, values)).rows,
    connect: async () => {
      const c = new pg.Client({ connectionString: url.toString() });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    },
  };
  afterAll(async () => {
    await client.end().catch(() => undefined);
    const a = new pg.Client({ connectionString: adminUrl });
    await a.connect();
    await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    await a.end();
  });
  return db;
}
