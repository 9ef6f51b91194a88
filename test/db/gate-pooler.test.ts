import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, splitPlanYaml, USERS_TABLE } from '../helpers/fixtures.js';
import { pgbouncerMissing, startPgBouncer, type PgBouncer } from '../helpers/pgbouncer.js';

/**
 * The old-code gate judges writes, not connections (issue 22): an old and a
 * new release write as separate clients, directly or through a real
 * PgBouncer in transaction pooling (two server connections for four
 * clients, so both releases' statements run on the same server sessions)
 * or session pooling. The gate refuses stop-write while the old release
 * writes; once it stops, and while the new release keeps writing through
 * the same server connections, the gate opens after old_code_quiet and
 * within old_code_quiet + 10 s. Before generations, the pooled cases stayed
 * shut: the server sessions that once carried an old-code write were still
 * connected.
 */

const missing = pgbouncerMissing();
if (missing) console.log(`test/db/gate-pooler.test.ts: the pooled cases are skipped: ${missing}`);

const PLAN = 'split-users-full-name';
const QUIET_MS = 2_000;
const YAML = splitPlanYaml(
  PLAN,
  'public.users',
  '{ batch_size: 500, pause: 0ms }',
  `{ lock_timeout: 1s, statement_timeout: 10s, retries: 1, old_code_quiet: ${QUIET_MS}ms }`,
);
/** The bar: opened within this long after the old release stopped. */
const OPEN_WITHIN_MS = QUIET_MS + 10_000;

/** Poll `done` until it holds, bounded: waits for a state, not for a duration. */
async function waitFor(what: string, done: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A release: `clients` connections as `name`, each writing `sql` every 50 ms until stopped (which disconnects). */
async function release(
  url: string,
  name: string,
  clients: number,
  sql: string,
): Promise<{ writes: () => number; errors: unknown[]; stop: () => Promise<void> }> {
  const errors: unknown[] = [];
  let writes = 0;
  let running = true;
  const connections = await Promise.all(
    Array.from({ length: clients }, async () => {
      const c = new pg.Client({ connectionString: url, application_name: name });
      c.on('error', (e) => errors.push(e));
      await c.connect();
      return c;
    }),
  );
  const loops = connections.map(async (c, i) => {
    for (let n = 0; running; n++) {
      await c.query(sql, [`${name}${n} W${i}`, 10 + i]).then(
        () => writes++,
        (e: unknown) => errors.push(e),
      );
      await sleep(50);
    }
  });
  return {
    writes: () => writes,
    errors,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      await Promise.all(connections.map((c) => c.end().catch(() => undefined)));
    },
  };
}

type Route = 'direct' | 'transaction' | 'session';
const ROUTES: { route: Route; pool: { mode: 'transaction' | 'session'; poolSize: number } | null }[] = [
  { route: 'direct', pool: null },
  // Four clients on two server connections: every server session carries both releases.
  { route: 'transaction', pool: { mode: 'transaction', poolSize: 2 } },
  // Each client holds a server connection while connected; the old release's stay in the pool after it leaves.
  { route: 'session', pool: { mode: 'session', poolSize: 4 } },
];

const bouncers: PgBouncer[] = [];
afterAll(async () => {
  for (const b of bouncers) await b.stop();
});

describe.each(ROUTES)('old-code gate, applications $route', ({ route, pool }) => {
  it.skipIf(pool !== null && missing !== null)(
    'refuses stop-write while the old release writes, and opens within old_code_quiet + 10 s of it stopping while the new release writes on',
    async () => {
      const db: TestDatabase = await freshDatabase();
      await db.sql(USERS_TABLE);
      await db.sql(seedUsers(100));
      const dir = await planDir({ [`${PLAN}.yaml`]: YAML });
      // The runner always connects directly: it refuses a transaction pooler (docs/poolers.md).
      const cli = (...args: string[]) => runCli(['plan', ...args, '--dir', dir, '--database-url', db.url]);
      expect((await cli('apply', PLAN, '--phase', 'switch-read')).code).toBe(0);

      let appUrl = db.url;
      if (pool) {
        const bouncer = await startPgBouncer(inject('adminUrl'), pool);
        bouncers.push(bouncer);
        appUrl = bouncer.url(db.url);
      }
      const newRelease = await release(appUrl, 'new-release', 2, `UPDATE users SET first_name = $1 WHERE id = $2`);
      const oldRelease = await release(appUrl, 'old-release', 2, `UPDATE users SET full_name = $1 WHERE id = $2`);
      try {
        const recorded = async (): Promise<boolean> => (await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.old_code_writes`))[0]!.n > 0;
        await waitFor('an old-code write recorded', recorded);

        // While the old release writes, every look refuses, naming it. Each refusal starts a new generation, and
        // the old release's next write is recorded again on whichever server session carries it.
        for (let look = 0; look < 2; look++) {
          const refused = await cli('apply', PLAN, '--phase', 'stop-write');
          expect(refused.code, refused.errors).toBe(2);
          expect(refused.errors).toMatch(/old code still uses the old columns, so stop-write waits/);
          expect(refused.errors).toMatch(/application_name "old-release", user \S+, address 127\.0\.0\.1/);
        }
        // Writes after the last refusal started its generation (it committed before the CLI exited), so the gate
        // cannot open before the old release stops plus the quiet period.
        const afterRefusal = oldRelease.writes();
        await waitFor('old-code writes after the last refusal', async () => oldRelease.writes() > afterRefusal + 2);
        await oldRelease.stop();
        const stoppedAt = Date.now();
        const newWritesAtStop = newRelease.writes();

        let opened: Awaited<ReturnType<typeof cli>> | null = null;
        while (Date.now() - stoppedAt < OPEN_WITHIN_MS + 5_000) {
          const tried = await cli('apply', PLAN, '--phase', 'stop-write');
          if (tried.code === 0) {
            opened = tried;
            break;
          }
          expect(tried.code, tried.errors).toBe(2);
          await sleep(250);
        }
        const openedMs = Date.now() - stoppedAt;
        console.log(`gate-pooler ${route}: stop-write opened ${openedMs} ms after the old release stopped (old_code_quiet ${QUIET_MS} ms)`);
        expect(opened, `the gate stayed shut ${openedMs} ms after the old release stopped`).not.toBeNull();
        expect(openedMs).toBeGreaterThanOrEqual(QUIET_MS);
        expect(openedMs).toBeLessThanOrEqual(OPEN_WITHIN_MS);
        expect((await db.sql(`SELECT phase FROM pgshift.plans`))[0]).toEqual({ phase: 'stop-write' });

        // The new release wrote on throughout, without an error.
        expect(newRelease.writes()).toBeGreaterThan(newWritesAtStop);
        expect(newRelease.errors).toEqual([]);
        expect(oldRelease.errors).toEqual([]);
        if (pool) {
          // What kept the gate shut before: a server session that carried an old-code write is still connected.
          const connected = await db.sql<{ n: number }>(
            `SELECT count(*)::int AS n FROM pgshift.old_code_writes w JOIN pg_stat_activity a ON a.pid = w.pid AND a.backend_start = w.backend_start`,
          );
          expect(connected[0]!.n).toBeGreaterThan(0);
        }
      } finally {
        await oldRelease.stop();
        await newRelease.stop();
      }
    },
  );
});
