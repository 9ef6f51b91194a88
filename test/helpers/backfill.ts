import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pino, { type Logger } from 'pino';
import type { TestDatabase } from './db.js';

/** A pino logger at debug level whose JSON entries are kept for assertions. */
export function capturingLogger(): { log: Logger; entries: () => Record<string, unknown>[]; messages: () => string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const log = pino({ level: 'debug', base: undefined }, stream);
  const entries = (): Record<string, unknown>[] => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, entries, messages: () => entries().map((e) => String(e.msg ?? '')) };
}

export { splitPlanYaml } from './fixtures.js';

/** Rows of `table` whose new columns are not what the split expressions give from full_name (NULL-safe). */
export async function inconsistentRows(db: TestDatabase, table: string): Promise<number> {
  const rows = await db.sql<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${table}
      WHERE first_name IS DISTINCT FROM split_part(full_name, ' ', 1)
         OR last_name IS DISTINCT FROM nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)`,
  );
  return rows[0]!.n;
}

/** Poll `probe` until it returns a value other than undefined/false, or fail after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 25): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * The backend of the pgshift runner connected to this database (not its
 * monitor, lease, batch-end, final-check or ANALYZE connections), if any. `waiting` means waiting for another transaction (a row
 * lock), not the short relation-extension waits a writing UPDATE also shows.
 */
export async function runnerBackend(db: TestDatabase): Promise<{ pid: number; state: string; waiting: boolean } | undefined> {
  const rows = await db.sql<{ pid: number; state: string; waiting: boolean }>(
    `SELECT pid, state, coalesce(wait_event = 'transactionid', false) AS waiting FROM pg_stat_activity
      WHERE datname = current_database() AND application_name LIKE 'pgshift %' AND application_name NOT IN ('pgshift monitor', 'pgshift lease')
        AND application_name NOT LIKE 'pgshift bounds %' AND application_name NOT LIKE 'pgshift verify %' AND application_name NOT LIKE 'pgshift analyze %'
        AND pid <> pg_backend_pid()`,
  );
  return rows[0];
}

/** The backfill checkpoint of a plan. */
export async function checkpoint(
  db: TestDatabase,
  plan: string,
): Promise<{ last_key: string[] | null; rows_done: number; rows_estimated: number; finished: boolean } | undefined> {
  const rows = await db
    .sql<{ last_key: string[] | null; rows_done: number; rows_estimated: number; finished: boolean }>(
      `SELECT last_key, rows_done::int AS rows_done, rows_estimated::int AS rows_estimated, finished_at IS NOT NULL AS finished
       FROM pgshift.backfill WHERE plan = $1`,
      [plan],
    )
    .catch(() => []);
  return rows[0];
}
