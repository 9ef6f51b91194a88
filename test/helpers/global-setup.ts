import type { TestProject } from 'vitest/node';
import { requestedMajor, startServer } from './server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
  }
}

/** One server for the whole run; each test file makes its own database on it. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startServer();
  project.provide('adminUrl', server.adminUrl);
  const version = await serverVersion(server.adminUrl);
  console.log(`pgshift tests: PostgreSQL ${version} (${server.source})`);
  // A package for another platform may map one major to another's binaries: never test the wrong one quietly.
  const wanted = requestedMajor();
  if (wanted !== null && server.source !== 'TEST_DATABASE_URL' && Number.parseInt(version, 10) !== wanted) {
    await server.stop();
    throw new Error(`PGSHIFT_TEST_PG_MAJOR=${wanted} but the server is PostgreSQL ${version}`);
  }
  return () => server.stop();
}

async function serverVersion(url: string): Promise<string> {
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
  } finally {
    await client.end();
  }
}
