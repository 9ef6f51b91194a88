import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectName } from '../../src/db/ident.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, splitPlanYaml, USERS_TABLE } from '../helpers/fixtures.js';
import { startEmbedded, TEST_FLAGS, type TestServer } from '../helpers/server.js';

/**
 * The old-code gate and drift, through the built binary against a real
 * PostgreSQL: stop-write and contract wait while old code writes (or, with
 * pg_stat_statements, reads) the old columns, and go once it has been quiet
 * past guards.old_code_quiet; --force goes past and the log says so; objects
 * changed by hand are named, and the plan does not move.
 */

const PLAN = 'split-users-full-name';
/** A tiny quiet period, so the test can wait it out. */
const QUIET_MS = 1_500;
const WAIT_QUIET_MS = QUIET_MS + 1_200;
const YAML = splitPlanYaml(
  PLAN,
  'public.users',
  '{ batch_size: 500, pause: 0ms }',
  `{ lock_timeout: 1s, statement_timeout: 10s, retries: 1, old_code_quiet: ${QUIET_MS}ms }`,
);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `done` until it holds, bounded: waits for a state, not for a duration. */
async function waitFor(done: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > until) throw new Error('waitFor: timed out');
    await sleep(100);
  }
}

async function usersDb(db: TestDatabase, dir: string): Promise<(...args: string[]) => ReturnType<typeof runCli>> {
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(200));
  return (...args: string[]) => runCli(['plan', ...args, '--dir', dir, '--database-url', db.url]);
}

/** A client of the old release: it writes full_name every 100 ms until paused or stopped (stop also disconnects). */
async function oldRelease(url: string): Promise<{ pause: () => Promise<void>; stop: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: url, application_name: 'old-release' });
  client.on('error', () => undefined);
  await client.connect();
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      await client.query(`UPDATE users SET full_name = $1 WHERE id = 7`, [`Old${i} Writer`]).catch(() => undefined);
      await sleep(100);
    }
  })();
  return {
    pause: async () => {
      running = false;
      await loop;
    },
    stop: async () => {
      running = false;
      await loop;
      await client.end().catch(() => undefined);
    },
  };
}

interface StatusRow {
  plan: string;
  phase: string;
  drift: { object: string; problem: string; message: string }[] | null;
  oldCode: {
    recent: boolean;
    sessions: number;
    lastWriteAt: string | null;
    writers: { applicationName: string; user: string; clientAddress: string | null; lastAt: string }[];
    statements: { query: string }[];
  } | null;
}

describe('old-code gate', () => {
  let db: TestDatabase;
  let cli: (...args: string[]) => ReturnType<typeof runCli>;
  beforeAll(async () => {
    db = await freshDatabase();
    cli = await usersDb(db, await planDir({ [`${PLAN}.yaml`]: YAML }));
  });

  it('refuses stop-write while an old-code client keeps writing, naming it, and lets the plan go once it is quiet', async () => {
    expect((await cli('apply', PLAN, '--phase', 'switch-read')).code).toBe(0);
    const old = await oldRelease(db.url);
    afterAll(() => old.stop());
    await sleep(1_200);
    const refused = await cli('apply', PLAN, '--phase', 'stop-write');
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/old code still uses the old columns, so stop-write waits/);
    expect(refused.errors).toMatch(/1 client session wrote the old columns since the gate started watching afresh \d+ s ago \(\S+\): pid \d+/);
    expect(refused.errors).toMatch(/application_name "old-release", user (postgres|\*\*\*), address 127\.0\.0\.1/);
    expect(refused.errors).toMatch(/wrote \d+ s ago \(\S+\)/);

    // The refusal started a new generation, and the old release writes on: it is recorded again.
    const statusRow = async (): Promise<StatusRow> => ((await cli('status', PLAN, '--json')).lines[0] as unknown as StatusRow[])[0]!;
    await waitFor(async () => (await statusRow()).oldCode!.writers.length === 1);
    const busy = await statusRow();
    expect(busy.phase).toBe('switch-read');
    expect(busy.oldCode).toMatchObject({
      recent: true,
      writers: [{ applicationName: 'old-release', user: expect.stringMatching(/^(postgres|\*\*\*)$/), clientAddress: '127.0.0.1' }],
    });
    expect(busy.oldCode!.sessions).toBe(1);
    // Nothing moved.
    expect((await db.sql(`SELECT phase FROM pgshift.plans`))[0]).toEqual({ phase: 'switch-read' });

    // It stops writing but stays connected. Its writes since the last look refuse once more (and start a new
    // generation); then a quiet period with no write opens the gate, connected or not: the gate judges writes,
    // not connections (behind a pooler the connection is not the old code's).
    await old.pause();
    const again = await cli('apply', PLAN, '--phase', 'stop-write');
    expect(again.code).toBe(2);
    expect(again.errors).toMatch(/application_name "old-release"/);
    await sleep(WAIT_QUIET_MS);
    const quiet = ((await cli('status', PLAN, '--json')).lines[0] as unknown as StatusRow[])[0]!;
    expect(quiet.oldCode).toMatchObject({ recent: false, writers: [] });
    expect(quiet.oldCode!.lastWriteAt).not.toBeNull();
    expect((await cli('apply', PLAN, '--phase', 'stop-write')).code).toBe(0);
    await old.stop();
  });

  it('refuses contract while old code still writes after stop-write; --force goes past and the log says so', async () => {
    const old = await oldRelease(db.url);
    afterAll(() => old.stop());
    await sleep(1_200);
    // `next` landing on contract is gated as well.
    const refused = await cli('apply', PLAN, '--phase', 'next');
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/so contract waits/);
    const human = await runCli(['plan', 'status', PLAN, '--no-json', '--dir', await planDir({ [`${PLAN}.yaml`]: YAML }), '--database-url', db.url]);
    expect(human.stdout).toMatch(/split-users-full-name: old code: seen within guards.old_code_quiet \(1500 ms\), stop-write and contract wait: .*old-release/);
    expect((await cli('apply', PLAN, '--phase', 'contract', '--force')).code).toBe(0);
    await old.stop().catch(() => undefined);
    const log = (await cli('log', PLAN, '--json')).lines[0] as unknown as { phase: string; action: string; forced: boolean }[];
    expect(log[0]).toMatchObject({ phase: 'contract', action: 'apply', forced: true });
    expect(log[1]).toMatchObject({ phase: 'stop-write', action: 'apply', forced: false });
  });
});

describe('what the trigger counts as old code', () => {
  let db: TestDatabase;
  let cli: (...args: string[]) => ReturnType<typeof runCli>;
  beforeAll(async () => {
    db = await freshDatabase();
    cli = await usersDb(db, await planDir({ [`${PLAN}.yaml`]: YAML }));
  });
  /** Run `sql` on a session of its own, then whether the session was recorded as old code (1) or not (0). */
  const recorded = async (sql: string): Promise<number> => {
    const c = new pg.Client({ connectionString: db.url, application_name: 'probe' });
    await c.connect();
    try {
      await c.query(sql);
      const { rows } = await c.query<{ n: string | null }>(`SELECT count(*) AS n FROM pgshift.old_code_writes WHERE pid = pg_backend_pid()`);
      return Number(rows[0]!.n ?? 0);
    } finally {
      await c.end();
    }
  };

  it('a client writing the old side, never the new side, the backfill or a derived write', async () => {
    expect((await cli('apply', PLAN, '--phase', 'switch-read')).code).toBe(0);
    expect(await recorded(`INSERT INTO users (full_name) VALUES ('Old Insert')`)).toBe(1);
    expect(await recorded(`UPDATE users SET full_name = 'Old Update' WHERE id = 3`)).toBe(1);
    expect(await recorded(`INSERT INTO users (first_name, last_name) VALUES ('New', 'Insert')`)).toBe(0);
    expect(await recorded(`UPDATE users SET first_name = 'New' WHERE id = 4`)).toBe(0);
    expect(await recorded(`UPDATE users SET user_name = 'untouched sides' WHERE id = 5`)).toBe(0);
    // The backfill writes the new side from the old, under its setting (the trigger has no WHEN clause since it was made cheaper).
    expect(await recorded(`BEGIN; SET LOCAL pgshift.backfill = 'on'; UPDATE users SET first_name = 'Back', last_name = 'Fill' WHERE id = 6; COMMIT`)).toBe(0);
    // A rolled-back write leaves no record.
    expect(await recorded(`BEGIN; UPDATE users SET full_name = 'Rolled Back' WHERE id = 7; ROLLBACK`)).toBe(0);
    // After stop-write the old side is derived: a client that still writes it is old code.
    expect((await cli('apply', PLAN, '--phase', 'stop-write', '--force')).code).toBe(0);
    expect(await recorded(`UPDATE users SET full_name = 'Late Writer' WHERE id = 8`)).toBe(1);
    expect(await recorded(`UPDATE users SET first_name = 'New' WHERE id = 9`)).toBe(0);
    expect(await recorded(`INSERT INTO users (first_name, last_name) VALUES ('New', 'Row')`)).toBe(0);
  });

  it('does not fail a write when the writer may not reach the state schema', async () => {
    await db.sql(
      `CREATE ROLE gate_app LOGIN PASSWORD 'app'; GRANT SELECT, INSERT, UPDATE ON users TO gate_app; GRANT USAGE ON SEQUENCE users_id_seq TO gate_app; REVOKE USAGE ON SCHEMA pgshift FROM PUBLIC`,
    );
    const url = new URL(db.url);
    url.username = 'gate_app';
    url.password = 'app';
    const c = new pg.Client({ connectionString: url.toString() });
    await c.connect();
    try {
      // Old-code writes after stop-write: the mark runs, its call is refused, the write goes through.
      for (let i = 0; i < 3; i++) await c.query(`INSERT INTO users (full_name, user_name) VALUES ('Unprivileged Old', 'unprivileged')`);
      await c.query(`UPDATE users SET full_name = 'Unprivileged Update' WHERE id = 10`);
      expect((await db.sql(`SELECT count(*)::int AS n FROM users WHERE user_name = 'unprivileged'`))[0]).toEqual({ n: 3 });
      expect((await db.sql(`SELECT count(*)::int AS n FROM pgshift.old_code_writes WHERE usename = 'gate_app'`))[0]).toEqual({ n: 0 });
    } finally {
      await c.end();
    }
  });
});

describe('old-code gate with pg_stat_statements', () => {
  let server: TestServer | null = null;
  let reason = '';
  let db: pg.Client;
  let url: string;
  beforeAll(async () => {
    try {
      server = await startEmbedded({ flags: [...TEST_FLAGS, '-c', 'shared_preload_libraries=pg_stat_statements'], prefix: 'pgshift-pgss' });
      url = server.adminUrl;
      db = new pg.Client({ connectionString: url });
      await db.connect();
      await db.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      await db.query('SELECT count(*) FROM pg_stat_statements');
    } catch (error) {
      reason = `pg_stat_statements cannot be preloaded here: ${(error as Error).message}`;
    }
  });
  afterAll(async () => {
    await db?.end().catch(() => undefined);
    await server?.stop();
  });

  it('refuses stop-write while old code reads the old column, naming the statement', async (ctx) => {
    if (reason) {
      console.log(`skipped: ${reason}`);
      ctx.skip();
    }
    await db.query(USERS_TABLE);
    await db.query(seedUsers(200));
    const dir = await planDir({ [`${PLAN}.yaml`]: YAML });
    const cli = (...args: string[]) => runCli(['plan', ...args, '--dir', dir, '--database-url', url]);
    expect((await cli('apply', PLAN, '--phase', 'switch-read')).code).toBe(0);

    // An old release that only reads: no trigger sees it, pg_stat_statements does.
    const reader = new pg.Client({ connectionString: url, application_name: 'old-reader' });
    reader.on('error', () => undefined);
    await reader.connect();
    afterAll(() => reader.end().catch(() => undefined));
    for (let i = 1; i <= 5; i++) await reader.query('SELECT full_name FROM users WHERE id = $1', [i]);
    const refused = await cli('apply', PLAN, '--phase', 'stop-write');
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/statements naming an old column: .*SELECT full_name FROM users WHERE id = \$1\\?" \(5 calls by (postgres|\*\*\*)\)/);
    // No trigger saw a write: only the statement is named.
    expect(refused.errors).not.toMatch(/client sessions? wrote/);

    // Quiet past the window, then one more read: its count grew since the last look, so it is seen again.
    await sleep(WAIT_QUIET_MS);
    await reader.query('SELECT full_name FROM users WHERE id = $1', [9]);
    expect((await cli('apply', PLAN, '--phase', 'stop-write')).code).toBe(2);
    await reader.end();
    // The count no longer grows: what was seen ages out of the window.
    await sleep(WAIT_QUIET_MS);
    const status = ((await cli('status', PLAN, '--json')).lines[0] as unknown as StatusRow[])[0]!;
    expect(status.oldCode).toMatchObject({ recent: false, statements: [] });
    expect((await cli('apply', PLAN, '--phase', 'stop-write')).code).toBe(0);
  });
});

describe('a plan in flight with the mark it had before generations', () => {
  let db: TestDatabase;
  let cli: (...args: string[]) => ReturnType<typeof runCli>;
  beforeAll(async () => {
    db = await freshDatabase();
    cli = await usersDb(db, await planDir({ [`${PLAN}.yaml`]: YAML }));
  });
  const watch = async (): Promise<{ g: number; at: Date | null; mark: string | null }> =>
    (
      await db.sql<{ g: number; at: Date | null; mark: string | null }>(
        `SELECT old_code_generation AS g, old_code_generation_at AS at,
                substring(prosrc from 'pgshift\\.ow[0-9]*_split_users_full_name') AS mark
           FROM pgshift.plans, pg_proc WHERE name = '${PLAN}' AND pg_proc.oid = to_regprocedure('"pgshift"."split-users-full-name_sync"()')`,
      )
    )[0]!;

  it('is generation 0 since its start; the first look that sees writes starts generation 1 and it goes once quiet', async () => {
    // With the gate off, switch-read starts no watch: the plan stands as one from before state schema version 8 would.
    expect((await cli('apply', PLAN, '--phase', 'switch-read', '--old-code-quiet', '0')).code).toBe(0);
    expect(await watch()).toEqual({ g: 0, at: null, mark: 'pgshift.ow_split_users_full_name' });
    const old = await oldRelease(db.url);
    afterAll(() => old.stop());
    await waitFor(async () => (await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.old_code_writes`))[0]!.n > 0);

    const refused = await cli('apply', PLAN, '--phase', 'stop-write');
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/application_name "old-release"/);
    const first = await watch();
    expect(first).toMatchObject({ g: 1, mark: 'pgshift.ow1_split_users_full_name' });
    // The same session, recorded once already, records again in the new generation: its row's last write moves on.
    await waitFor(
      async () => (await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.old_code_writes WHERE last_at >= $1`, [first.at]))[0]!.n === 1,
    );
    expect((await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.old_code_writes`))[0]!.n).toBe(1);

    await old.stop();
    expect((await cli('apply', PLAN, '--phase', 'stop-write')).code).toBe(2);
    expect(await watch()).toMatchObject({ g: 2, mark: 'pgshift.ow2_split_users_full_name' });
    await sleep(WAIT_QUIET_MS);
    expect((await cli('apply', PLAN, '--phase', 'stop-write')).code).toBe(0);
    // stop-write redefined the function one-way in the current generation's name.
    expect(await watch()).toMatchObject({ g: 2, mark: 'pgshift.ow2_split_users_full_name' });
    // plan show prints what a phase would run now: in the current generation's name.
    const shown = await cli('show', PLAN, '--phase', 'stop-write');
    expect(shown.stdout).toContain(`'pgshift.ow2_split_users_full_name'`);
    expect(shown.stdout).not.toContain(`'pgshift.ow_split_users_full_name'`);
  });

  it('counts a session recorded in an earlier life of the plan by its latest write once the plan starts again', async () => {
    const again = new pg.Client({ connectionString: db.url, application_name: 'old-again' });
    await again.connect();
    afterAll(() => again.end().catch(() => undefined));
    // After stop-write a client writing the old side is old code: recorded in this life of the plan.
    await again.query(`UPDATE users SET full_name = 'Old Again' WHERE id = 11`);
    expect((await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.old_code_writes WHERE application_name = 'old-again'`))[0]!.n).toBe(1);
    expect((await cli('rollback', PLAN, '--phase', 'expand')).code).toBe(0);
    expect((await cli('apply', PLAN, '--phase', 'switch-read')).code).toBe(0);
    // Watched past the quiet period with nothing written: the gate would open now.
    await sleep(WAIT_QUIET_MS);
    // The same session writes the old side again: its row (first write in the earlier life) moves its last write on.
    await again.query(`UPDATE users SET full_name = 'Old Again' WHERE id = 12`);
    const refused = await cli('apply', PLAN, '--phase', 'stop-write');
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(/application_name "old-again"/);
  });
});

describe('drift', () => {
  const UNIQUE_PLAN = 'split-users-unique';
  const yaml = splitPlanYaml(
    UNIQUE_PLAN,
    'public.users',
    '{ batch_size: 500, pause: 0ms }',
    '{ lock_timeout: 1s, statement_timeout: 10s, retries: 1 }',
  ).replace('      type: text\n      using: split_part', '      type: text\n      unique: true\n      using: split_part');
  let db: TestDatabase;
  let cli: (...args: string[]) => ReturnType<typeof runCli>;
  beforeAll(async () => {
    db = await freshDatabase();
    cli = await usersDb(db, await planDir({ [`${UNIQUE_PLAN}.yaml`]: yaml }));
  });
  const driftOf = async (): Promise<StatusRow['drift']> => ((await cli('status', UNIQUE_PLAN, '--json')).lines[0] as unknown as StatusRow[])[0]!.drift;

  it('names an index created before its phase, and apply refuses to move the plan', async () => {
    expect((await cli('apply', UNIQUE_PLAN, '--phase', 'backfill')).code).toBe(0);
    expect(await driftOf()).toEqual([]);
    const index = objectName('users', 'first_name', 'pgshift_uq');
    await db.sql(`CREATE UNIQUE INDEX "${index}" ON users (first_name)`);
    expect(await driftOf()).toEqual([
      expect.objectContaining({ object: `index "${index}"`, problem: 'unexpected', message: `index "${index}" exists, but switch-read makes it` }),
    ]);
    const refused = await cli('apply', UNIQUE_PLAN, '--phase', 'next');
    expect(refused.code).toBe(2);
    expect(refused.errors).toContain(`has drifted from what backfill should have: index "${index}" exists, but switch-read makes it`);
    expect((await db.sql(`SELECT phase FROM pgshift.plans`))[0]).toEqual({ phase: 'backfill' });
    await db.sql(`DROP INDEX "${index}"`);
    expect(await driftOf()).toEqual([]);
  });

  it('names a dropped trigger; apply and rollback refuse, verify reports it', async () => {
    const trigger = objectName('pgshift', UNIQUE_PLAN);
    await db.sql(`DROP TRIGGER "${trigger}" ON users`);
    expect(await driftOf()).toEqual([
      expect.objectContaining({ object: `trigger "${trigger}"`, problem: 'missing', message: `trigger "${trigger}" is missing (dual-write makes it)` }),
    ]);
    const apply = await cli('apply', UNIQUE_PLAN, '--phase', 'next');
    expect(apply.code).toBe(2);
    expect(apply.errors).toContain(`trigger "${trigger}" is missing (dual-write makes it)`);
    expect((await cli('rollback', UNIQUE_PLAN)).code).toBe(2);
    const verify = await cli('verify', UNIQUE_PLAN, '--json');
    expect(verify.code).toBe(2);
    expect(verify.lines[0]).toMatchObject({ differing: 0, drift: [{ object: `trigger "${trigger}"`, problem: 'missing' }] });
    const log = (await cli('log', UNIQUE_PLAN, '--json')).lines[0] as unknown as { phase: string }[];
    expect(log[0]).toMatchObject({ phase: 'backfill' });
    // --force moves it anyway (rolled back: dual-write's rollback drops what is left), and the log says so.
    expect((await cli('rollback', UNIQUE_PLAN, '--phase', 'dual-write', '--force')).code).toBe(0);
    expect(await driftOf()).toEqual([]);
    const after = (await cli('log', UNIQUE_PLAN, '--json')).lines[0] as unknown as { phase: string; action: string; forced: boolean }[];
    expect(after.slice(0, 2)).toEqual([
      expect.objectContaining({ phase: 'dual-write', action: 'rollback', forced: true }),
      expect.objectContaining({ phase: 'backfill', action: 'rollback', forced: true }),
    ]);
  });
});
