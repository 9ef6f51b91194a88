import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PlanBusyError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { PHASES } from '../../src/phases/phases.js';
import { PlanLease } from '../../src/runner/plan-lock.js';
import { ensureStateSchema } from '../../src/state/schema.js';
import { runCli, startCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, splitPlanYaml, SPLIT_YAML, USERS_TABLE } from '../helpers/fixtures.js';
import { pgbouncerMissing, startPgBouncer, type PgBouncer } from '../helpers/pgbouncer.js';

const missing = pgbouncerMissing();
if (missing) console.log(`test/db/poolers.test.ts skipped: ${missing}`);

const PLAN = 'split-users-full-name';
/** Small fixed batches with long pauses: a backfill that is idle between batches most of the time. */
const SLOW_SPLIT = SPLIT_YAML.replace('batch_size: 500', 'batch_size: 200').replace('pause: 0ms', 'pause: 500ms, target_batch_ms: 0');

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

describe.skipIf(missing !== null)('PgBouncer in front of the runner and the application', () => {
  let db: TestDatabase;
  const bouncers: PgBouncer[] = [];
  let transaction: PgBouncer;
  let transactionOfOne: PgBouncer;
  let session: PgBouncer;
  let sessionNoReset: PgBouncer;
  let sessionOfThree: PgBouncer;

  beforeAll(async () => {
    db = await freshDatabase();
    await db.sql(USERS_TABLE);
    await db.sql(seedUsers(3000));
    const admin = inject('adminUrl');
    const start = async (o: Parameters<typeof startPgBouncer>[1]): Promise<PgBouncer> => {
      const b = await startPgBouncer(admin, o);
      bouncers.push(b);
      return b;
    };
    transaction = await start({ mode: 'transaction', poolSize: 4 });
    transactionOfOne = await start({ mode: 'transaction', poolSize: 1 });
    session = await start({ mode: 'session', poolSize: 8 });
    // A pooler that hands a server connection on without resetting it keeps a killed runner's session locks alive.
    sessionNoReset = await start({ mode: 'session', poolSize: 8, resetQuery: '' });
    // Room for three server connections, what docs/poolers.md says a runner needs; a query waiting for one gives up after 30 s.
    sessionOfThree = await start({ mode: 'session', poolSize: 3, queryWaitTimeoutS: 30 });
  });
  afterAll(async () => {
    for (const b of bouncers) await b.stop();
  });

  it('refuses a runner behind transaction pooling with exit 2, saying to use a direct or session-pooled URL, and changes nothing', async () => {
    const dir = await planDir({ 'split.yaml': SPLIT_YAML });
    for (const bouncer of [transaction, transactionOfOne]) {
      const result = await runCli(['plan', 'apply', '--phase', 'expand', '--dir', dir, '--database-url', bouncer.url(db.url)]);
      expect(result.code).toBe(2);
      expect(result.errors).toMatch(/does not keep its session between transactions \(.+\)/);
      expect(result.errors).toMatch(/direct URL to PostgreSQL or a session-pooled one/);
      const back = await runCli(['plan', 'rollback', PLAN, '--dir', dir, '--database-url', bouncer.url(db.url)]);
      expect(back.code).toBe(2);
      expect(back.errors).toMatch(/does not keep its session between transactions/);
    }
    expect(await db.sql(`SELECT to_regnamespace('pgshift') AS s`)).toEqual([{ s: null }]);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'first_name'`)).toEqual([{ n: 0 }]);
  });

  it('two runners through a transaction pool of one: neither backfills (both refused); the lease itself lets exactly one in and is released through the pool', async () => {
    const dir = await planDir({ 'split.yaml': SLOW_SPLIT });
    expect((await runCli(['plan', 'apply', '--phase', 'dual-write', '--dir', dir, '--database-url', db.url])).code).toBe(0);
    const args = ['plan', 'apply', '--phase', 'next', '--dir', dir, '--database-url', transactionOfOne.url(db.url)];
    const [a, b] = await Promise.all([runCli(args), runCli(args)]);
    expect([a.code, b.code]).toEqual([2, 2]);
    expect(await db.sql(`SELECT phase FROM pgshift.plans WHERE name = $1`, [PLAN])).toEqual([{ phase: 'dual-write' }]);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.backfill`)).toEqual([{ n: 0 }]);

    // The lease, taken by two runners whose statements all land on the one server connection.
    await ensureStateSchema(db.client, 'pgshift');
    const url = transactionOfOne.url(db.url);
    const clients = await Promise.all([client(url), client(url), client(url), client(url)]);
    const lease = (main: pg.Client, side: pg.Client): PlanLease =>
      new PlanLease({ client: main, side, schema: 'pgshift', plan: 'pool-of-one', ttlMs: 60_000, log: silentLogger, session: { pid: 0, token: '' } });
    const first = lease(clients[0]!, clients[1]!);
    const second = lease(clients[2]!, clients[3]!);
    const taken = await Promise.allSettled([first.take(), second.take()]);
    expect(taken.map((t) => t.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = taken.find((t) => t.status === 'rejected')!.reason as Error;
    expect(refused).toBeInstanceOf(PlanBusyError);
    expect((refused as PlanBusyError).exitCode).toBe(5);
    expect(refused.message).toMatch(
      /plan "pool-of-one" is being run by another runner \(pid \d+, pgshift \S+ \S+@\S+, holding it since \S+, last heartbeat [\d.]+s ago; its lease expires at \S+ unless renewed\)/,
    );
    const [winner, loser] = taken[0]!.status === 'fulfilled' ? [first, second] : [second, first];
    // Taking it again from the winner's own session is no re-entry: a third runner there is refused too.
    await expect(lease(clients[0]!, clients[1]!).take()).rejects.toBeInstanceOf(PlanBusyError);
    await winner.release();
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.leases WHERE plan = 'pool-of-one'`)).toEqual([{ n: 0 }]);
    await loser.take();
    await loser.release();
    for (const c of clients) await c.end();
    expect((await runCli(['plan', 'rollback', PLAN, '--phase', 'expand', '--dir', dir, '--database-url', db.url])).code).toBe(0);
  });

  it('a runner killed with SIGKILL mid-backfill behind a pooler that keeps its session: the next runner exits 5 until the lease expires, then resumes', async () => {
    const dir = await planDir({ 'split.yaml': SLOW_SPLIT });
    const url = sessionNoReset.url(db.url);
    const args = ['--dir', dir, '--database-url', url];
    const env = { PGSHIFT_LEASE: '3s' };
    expect((await runCli(['plan', 'apply', '--phase', 'dual-write', ...args], env)).code).toBe(0);

    const run = startCli(['plan', 'apply', '--phase', 'backfill', ...args], env);
    // Kill it just after a batch committed, in the pause before the next: its server connections are idle, so the
    // pooler keeps them (with their session) instead of closing them, as it would mid-statement.
    const rowsDone = async (): Promise<number> => (await db.sql<{ n: number }>(`SELECT coalesce(max(rows_done), 0)::int AS n FROM pgshift.backfill`))[0]!.n;
    let seen = 0;
    for (let i = 0; i < 800 && seen < 200; i++) {
      seen = await rowsDone();
      await sleep(10);
    }
    for (let i = 0; i < 800 && (await rowsDone()) === seen; i++) await sleep(5);
    run.child.kill('SIGKILL');
    await run.done;

    const refused = await runCli(['plan', 'apply', '--phase', 'backfill', ...args], env);
    expect(refused.code).toBe(5);
    expect(refused.errors).toMatch(/is being run by another runner \(pid \d+, pgshift .*last heartbeat [\d.]+s ago; its lease expires at \S+ unless renewed\)/);

    // Wait the lease out (3 s without a heartbeat), asking the way a retrying pipeline would.
    let next = refused;
    for (let i = 0; i < 40 && next.code === 5; i++) {
      await sleep(250);
      next = await runCli(['plan', 'apply', '--phase', 'backfill', ...args], env);
    }
    expect(next.code).toBe(0);
    expect(next.lines.find((l) => l.event === 'apply')).toMatchObject({ plan: PLAN, to: 'backfill' });
    const verify = await runCli(['plan', 'verify', PLAN, ...args]);
    expect(verify.lines[0]).toMatchObject({ differing: 0 });
    expect(await db.sql(`SELECT count(*)::int AS n FROM users WHERE first_name IS NULL`)).toEqual([{ n: 0 }]);
    expect((await runCli(['plan', 'rollback', PLAN, '--phase', 'expand', ...args])).code).toBe(0);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.leases`)).toEqual([{ n: 0 }]);
  });

  it('a full session pool: the backfill phase does without its spare connections instead of waiting in the queue of the pooler', async () => {
    await db.sql(`CREATE TABLE crowded (id bigserial PRIMARY KEY, full_name text NOT NULL, email text)`);
    await db.sql(`INSERT INTO crowded (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, 5000) g`);
    const yaml = splitPlanYaml('split-crowded', 'public.crowded', '{ batch_size: 500, pause: 0ms }', '{ lock_timeout: 500ms, statement_timeout: 20s }');
    const dir = await planDir({ 'crowded.yaml': yaml });
    expect((await runCli(['plan', 'apply', 'split-crowded', '--phase', 'dual-write', '--dir', dir, '--database-url', db.url])).code).toBe(0);
    // The application holds one of the pool's server connections the whole time.
    const app = await client(sessionOfThree.url(db.url));
    await app.query('SELECT 1');
    const started = performance.now();
    const run = await runCli(['plan', 'apply', 'split-crowded', '--phase', 'backfill', '--dir', dir, '--database-url', sessionOfThree.url(db.url)], {
      PGSHIFT_LOG_LEVEL: 'info',
    });
    const seconds = (performance.now() - started) / 1000;
    await app.end();
    expect(run.code, run.stderr).toBe(0);
    // The batch-end connection and ANALYZE's own would wait 30 s in the pooler's queue, and the batch-end lookups
    // then fail the backfill (they did, before); each is given up after 2 s and its work done on the runner's
    // connection (the final check's extra readers likewise, on a table big enough to want them).
    expect(run.stderr).toContain('no second connection for finding batch ends');
    expect(run.stderr).toMatch(/verify read 0 rows changed since their batch/);
    expect(run.stderr).toContain('analyzed public.crowded after the backfill');
    expect(seconds).toBeLessThan(25);
    expect(await db.sql(`SELECT count(*)::int AS n FROM crowded WHERE first_name IS NULL`)).toEqual([{ n: 0 }]);
  });

  it('session pooling: six phases through the pooler, application writes and pgshift.phase() through both pool modes at every phase, 0 errors', async () => {
    const dir = await planDir({ 'split.yaml': SPLIT_YAML });
    const args = ['--dir', dir, '--database-url', session.url(db.url)];
    // Start from a rolled-back plan even if an earlier test stopped half-way.
    await runCli(['plan', 'rollback', PLAN, '--phase', 'expand', '--dir', dir, '--database-url', db.url]);
    const apps = { transaction: await client(transaction.url(db.url)), session: await client(session.url(db.url)) };
    const errors: string[] = [];
    let n = 0;
    const write = async (app: pg.Client, phase: string, sql: string, values: unknown[]): Promise<void> => {
      await app.query(sql, values).catch((e: Error) => errors.push(`${phase}: ${e.message}`));
    };
    for (const phase of PHASES) {
      const applied = await runCli(['plan', 'apply', '--phase', phase, ...args]);
      expect(applied.errors).toBe('');
      expect(applied.code).toBe(0);
      for (const [mode, app] of Object.entries(apps)) {
        const read = await app.query<{ phase: string }>(`SELECT pgshift.phase($1) AS phase`, [PLAN]);
        expect(read.rows, `${mode} pooling at ${phase}`).toEqual([{ phase }]);
        const oldCode = phase !== 'stop-write' && phase !== 'contract';
        const newCode = ['switch-read', 'stop-write', 'contract'].includes(phase);
        for (let i = 0; i < 5; i++) {
          n++;
          if (oldCode) {
            await write(app, phase, `INSERT INTO users (full_name, email) VALUES ($1, $2)`, [`Old${n} Writer${n}`, `${mode}${n}@example.com`]);
            await write(app, phase, `UPDATE users SET full_name = $1 WHERE id = $2`, [`Upd${n} Old${n}`, 1 + (n % 3000)]);
          }
          if (newCode) {
            await write(app, phase, `INSERT INTO users (first_name, last_name, email) VALUES ($1, $2, $3)`, [
              `New${n}`,
              `Writer${n}`,
              `${mode}${n}@example.com`,
            ]);
            await write(app, phase, `UPDATE users SET first_name = $1, last_name = $2 WHERE id = $3`, [`Upd${n}`, `New${n}`, 1 + ((n + 7) % 3000)]);
          }
        }
      }
      if (phase === 'backfill' || phase === 'switch-read') {
        // verify takes no lease and runs one transaction at a time: any pool mode will do.
        for (const bouncer of [session, transaction]) {
          const verified = await runCli(['plan', 'verify', PLAN, '--dir', args[1]!, '--database-url', bouncer.url(db.url)]);
          expect(verified.lines[0]).toMatchObject({ differing: 0 });
        }
      }
    }
    for (const app of Object.values(apps)) await app.end();
    expect(errors).toEqual([]);
    // New-code writes kept what they wrote; the old column is gone.
    expect(
      await db.sql(`SELECT first_name, last_name FROM users WHERE email = 'transaction${n}@example.com' OR email = 'session${n}@example.com' ORDER BY email`),
    ).toEqual([{ first_name: `New${n}`, last_name: `Writer${n}` }]);
    expect(await db.sql(`SELECT count(*)::int AS n FROM users WHERE first_name IS NULL`)).toEqual([{ n: 0 }]);
  });
});
