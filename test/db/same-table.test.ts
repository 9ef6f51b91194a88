import { beforeAll, describe, expect, it } from 'vitest';
import { phaseIndex, type Phase } from '../../src/phases/phases.js';
import { ensureStateSchema } from '../../src/state/schema.js';
import { runnerBackend, waitFor } from '../helpers/backfill.js';
import { runCli, startCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir } from '../helpers/fixtures.js';

/**
 * Several plans in flight on one table. Plans whose columns are disjoint
 * move together, each with its own triggers, backfill, checks and rollback;
 * their triggers compose (docs/trigger.md#several-plans-on-one-table).
 * Plans that share a column still go one at a time, however many runners
 * start them at once.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

const GUARDS = 'backfill: { batch_size: 40, pause: 0ms }\nguards: { lock_timeout: 2s, statement_timeout: 20s, retries: 3 }';
const RENAME = (table: string, guards = GUARDS, name = 'a-rename'): string =>
  `plan: ${name}\ntable: public.${table}\nrename: { column: user_name, to: username }\n${guards}\n`;
const SPLIT = (table: string, guards = GUARDS, name = 'b-split'): string =>
  `plan: ${name}\ntable: public.${table}\nsplit:\n  column: full_name\n  into:\n` +
  `    - { name: first_name, type: text, using: "split_part(full_name, ' ', 1)" }\n` +
  `    - { name: last_name, type: text, using: "nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)" }\n` +
  `  reverse: "concat_ws(' ', first_name, last_name)"\n${guards}\n`;

/** Rows whose two sides disagree, for either plan (NULL-safe). */
async function wrongRows(table: string): Promise<number> {
  const [row] = await db.sql<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${table}
      WHERE username IS DISTINCT FROM user_name
         OR first_name IS DISTINCT FROM split_part(full_name, ' ', 1)
         OR last_name IS DISTINCT FROM nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)`,
  );
  return row!.n;
}

describe('two plans with disjoint columns on one table', () => {
  it('move through all six phases and back together, every write right on both sides of both plans', async () => {
    await db.sql(`CREATE TABLE people (id bigserial PRIMARY KEY, user_name text, full_name text, note text)`);
    await db.sql(`INSERT INTO people (user_name, full_name) SELECT 'seed' || g, 'Seed' || g || ' Person' FROM generate_series(1, 300) g`);
    const dir = await planDir({ 'a-rename.yaml': RENAME('people'), 'b-split.yaml': SPLIT('people') });
    const args = ['--dir', dir, '--database-url', db.url];
    let n = 0;

    /**
     * Writes of the code versions allowed at `at`, each reading back right on
     * every side that exists: one statement touching both plans' columns, and
     * one touching one plan's only (the other plan's side must stay as it was).
     */
    async function traffic(at: Phase | null, step: string): Promise<void> {
      const i = phaseIndex(at);
      const oldSide = at !== 'contract';
      const newSide = i >= phaseIndex('dual-write');
      const read = async (id: string): Promise<Record<string, string | null>> => {
        const cols = [...(oldSide ? ['user_name', 'full_name'] : []), ...(newSide ? ['username', 'first_name', 'last_name'] : [])];
        return (await db.sql<Record<string, string | null>>(`SELECT ${cols.join(', ')} FROM people WHERE id = $1`, [id]))[0]!;
      };
      const expected = (user: string, first: string, last: string): Record<string, string> => ({
        ...(oldSide ? { user_name: user, full_name: `${first} ${last}` } : {}),
        ...(newSide ? { username: user, first_name: first, last_name: last } : {}),
      });
      const target = (await db.sql<{ id: string }>(`SELECT id::text FROM people ORDER BY id LIMIT 1 OFFSET $1`, [n % 200]))[0]!.id;
      if (i <= phaseIndex('switch-read')) {
        // Old code of both plans: it names user_name and full_name.
        const k = ++n;
        const [ins] = await db.sql<{ id: string }>(`INSERT INTO people (user_name, full_name) VALUES ($1, $2) RETURNING id::text`, [
          `old${k}`,
          `Old${k} Writer`,
        ]);
        expect(await read(ins!.id), `${step}: old insert`).toEqual(expected(`old${k}`, `Old${k}`, 'Writer'));
        await db.sql(`UPDATE people SET user_name = $2, full_name = $3 WHERE id = $1`, [target, `both${k}`, `Both${k} Writer`]);
        expect(await read(target), `${step}: old update of both`).toEqual(expected(`both${k}`, `Both${k}`, 'Writer'));
        await db.sql(`UPDATE people SET user_name = $2 WHERE id = $1`, [target, `one${k}`]);
        expect(await read(target), `${step}: old update of the rename's column only`).toEqual(expected(`one${k}`, `Both${k}`, 'Writer'));
      }
      if (i >= phaseIndex('switch-read')) {
        // New code of both plans: it names username, first_name and last_name.
        const k = ++n;
        const [ins] = await db.sql<{ id: string }>(`INSERT INTO people (username, first_name, last_name) VALUES ($1, $2, 'Writer') RETURNING id::text`, [
          `new${k}`,
          `New${k}`,
        ]);
        expect(await read(ins!.id), `${step}: new insert`).toEqual(expected(`new${k}`, `New${k}`, 'Writer'));
        await db.sql(`UPDATE people SET username = $2, first_name = $3, last_name = 'Writer' WHERE id = $1`, [target, `nboth${k}`, `NBoth${k}`]);
        expect(await read(target), `${step}: new update of both`).toEqual(expected(`nboth${k}`, `NBoth${k}`, 'Writer'));
        await db.sql(`UPDATE people SET first_name = $2 WHERE id = $1`, [target, `NOne${k}`]);
        expect(await read(target), `${step}: new update of the split's column only`).toEqual(expected(`nboth${k}`, `NOne${k}`, 'Writer'));
      }
      // Once backfilled and while both sides exist, every row is right for both plans.
      if (i >= phaseIndex('backfill') && oldSide) expect(await wrongRows('people'), step).toBe(0);
      const phases = await db.sql<{ name: string; phase: string | null }>(`SELECT name, phase FROM pgshift.plans ORDER BY name`).catch(() => []);
      if (at)
        expect(phases, step).toEqual([
          { name: 'a-rename', phase: at },
          { name: 'b-split', phase: at },
        ]);
    }

    await traffic(null, 'before');
    const phases: Phase[] = ['expand', 'dual-write', 'backfill', 'switch-read', 'stop-write'];
    for (const phase of phases) {
      const forward = await runCli(['plan', 'apply', '--phase', phase, '--no-json', ...args]);
      expect(forward.errors, `apply ${phase}`).toBe('');
      expect(forward.code, `apply ${phase}`).toBe(0);
      expect(forward.stdout, `apply ${phase}`).toContain(`a-rename: applied ${phase}`);
      expect(forward.stdout, `apply ${phase}`).toContain(`b-split: applied ${phase}`);
      await traffic(phase, `at ${phase}`);
      // Each plan rolls back alone: the other's trigger and columns are left as they are.
      for (const plan of ['a-rename', 'b-split']) {
        const back = await runCli(['plan', 'rollback', plan, '--phase', 'current', ...args]);
        expect(back.errors, `rollback ${plan} from ${phase}`).toBe('');
        expect(back.code, `rollback ${plan} from ${phase}`).toBe(0);
      }
      await traffic(phases[phases.indexOf(phase) - 1] ?? null, `after rolling back ${phase}`);
      const again = await runCli(['plan', 'apply', '--phase', phase, ...args]);
      expect(again.errors, `apply ${phase} again`).toBe('');
      expect(again.code, `apply ${phase} again`).toBe(0);
    }
    // The triggers fire in name order, one pair per plan; each reads and writes only its own plan's columns.
    expect(
      await db.sql(`SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'people'::regclass AND NOT tgisinternal ORDER BY tgname COLLATE "C"`),
    ).toHaveLength(4);
    const contract = await runCli(['plan', 'apply', '--phase', 'contract', ...args]);
    expect(contract.errors, 'apply contract').toBe('');
    expect(contract.code).toBe(0);
    await traffic('contract', 'at contract');
    // Contract archived each plan's old columns; purged, the table is what the two plans made of it.
    for (const plan of ['a-rename', 'b-split']) {
      const purged = await runCli(['plan', 'purge', plan, ...args]);
      expect(purged.errors, `purge ${plan}`).toBe('');
      expect(purged.code).toBe(0);
    }
    expect(
      (
        await db.sql<{ attname: string }>(
          `SELECT attname::text FROM pg_attribute WHERE attrelid = 'people'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        )
      ).map((r) => r.attname),
    ).toEqual(['id', 'note', 'username', 'first_name', 'last_name']);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.plan_columns`)).toEqual([{ n: 0 }]);
  });
});

describe('two plans sharing a column on one table', () => {
  it('never both start, even from two runners at the same instant: the second waits, then runs', async () => {
    await db.sql(`CREATE TABLE accounts (id bigserial PRIMARY KEY, user_name text, full_name text)`);
    await db.sql(`INSERT INTO accounts (user_name, full_name) SELECT 'u' || g, 'F' || g || ' L' || g FROM generate_series(1, 100) g`);
    // Each runner sees only its own plan's file, so the release order cannot hold the second back: only the claims can.
    const plans = {
      'c-rename': `plan: c-rename\ntable: public.accounts\nrename: { column: user_name, to: login }\n${GUARDS}\n`,
      'd-retype': `plan: d-retype\ntable: public.accounts\nretype: { column: user_name, to: varchar(40), using: "user_name::varchar(40)", reverse: "user_name::text" }\n${GUARDS}\n`,
    };
    const dirs = { 'c-rename': await planDir({ 'c-rename.yaml': plans['c-rename'] }), 'd-retype': await planDir({ 'd-retype.yaml': plans['d-retype'] }) };
    const run = (plan: keyof typeof dirs, ...rest: string[]): ReturnType<typeof runCli> =>
      runCli(['plan', ...rest, '--dir', dirs[plan], '--database-url', db.url, '--json']);
    const [c, d] = await Promise.all([run('c-rename', 'apply', '--phase', 'expand'), run('d-retype', 'apply', '--phase', 'expand')]);
    expect([c.code, d.code]).toEqual([0, 0]);
    const outcomes = [...c.lines, ...d.lines] as unknown as { plan: string; phases: string[]; waiting?: { behind: string } }[];
    const started = outcomes.filter((o) => o.phases.length === 1);
    const waiting = outcomes.filter((o) => o.waiting);
    expect(started).toHaveLength(1);
    // It waits behind the one that won, whether it saw it started only (at no phase yet) or at expand already.
    expect(waiting).toEqual([expect.objectContaining({ phases: [], waiting: expect.objectContaining({ behind: started[0]!.plan, status: 'in_progress' }) })]);
    expect(await db.sql(`SELECT name FROM pgshift.plans WHERE status = 'in_progress' AND table_name = 'public.accounts'`)).toEqual([
      { name: started[0]!.plan },
    ]);
    expect(await db.sql(`SELECT DISTINCT plan FROM pgshift.plan_columns WHERE table_name = 'public.accounts'`)).toEqual([{ plan: started[0]!.plan }]);

    // Once the first is rolled back whole, its claims are gone and the second starts.
    const first = started[0]!.plan as keyof typeof dirs;
    const second = waiting[0]!.plan as keyof typeof dirs;
    const back = await run(first, 'rollback', first, '--phase', 'expand');
    expect(back.code, back.stderr).toBe(0);
    const next = await run(second, 'apply', '--phase', 'expand');
    expect(next.code, next.stderr).toBe(0);
    expect(next.lines).toEqual([expect.objectContaining({ plan: second, phases: ['expand'] })]);
    const again = await run(first, 'apply', '--phase', 'expand');
    expect(again.lines).toEqual([expect.objectContaining({ plan: first, phases: [], waiting: expect.objectContaining({ behind: second }) })]);
  });

  it('holds a start that races an uncommitted claim on its column until that commits, then has it wait behind it', async () => {
    await db.sql(`CREATE TABLE ledger (id bigserial PRIMARY KEY, entry text, memo text)`);
    await db.sql(`INSERT INTO ledger (entry) SELECT 'e' || g FROM generate_series(1, 50) g`);
    const dir = await planDir({ 'f-rename.yaml': `plan: f-rename\ntable: public.ledger\nrename: { column: entry, to: line }\n${GUARDS}\n` });
    await ensureStateSchema(db.client, 'pgshift');
    // Another runner's start, caught between its insert of the claim and its COMMIT.
    const other = await db.connect();
    await other.query('BEGIN');
    await other.query(`INSERT INTO pgshift.plans (name, table_name, kind, checksum, phase, status, facts)
                       VALUES ('e-drop', 'public.ledger', 'drop', repeat('c', 64), NULL, 'in_progress', '{}')`);
    await other.query(`INSERT INTO pgshift.plan_columns (plan, table_name, column_name) VALUES ('e-drop', 'public.ledger', 'entry')`);
    const run = startCli(['plan', 'apply', '--phase', 'expand', '--dir', dir, '--database-url', db.url, '--json']);
    // The runner's own insert of the claim waits for the other transaction (it cannot know yet whether that commits).
    await waitFor('the start to wait on the uncommitted claim', async () => (await runnerBackend(db))?.waiting);
    await other.query('COMMIT');
    await other.end();
    const out = await run.done;
    expect(out.code, out.stderr).toBe(0);
    expect(out.lines).toEqual([expect.objectContaining({ plan: 'f-rename', phases: [], waiting: { behind: 'e-drop', at: null, status: 'in_progress' } })]);
    expect(await db.sql(`SELECT name FROM pgshift.plans WHERE table_name = 'public.ledger'`)).toEqual([{ name: 'e-drop' }]);
  });
});

describe('two plans with disjoint columns at backfill in one apply', () => {
  // A batch may wait for a held row up to lock_timeout rather than about one batch, so the kill finds one waiting.
  const SLOW = 'backfill: { batch_size: 200, pause: 0ms, target_batch_ms: 15000 }\nguards: { lock_timeout: 30s, statement_timeout: 60s, retries: 2 }';

  /** A table of `rows` people and both plans at dual-write; returns the CLI's arguments for the folder. */
  async function atDualWrite(table: string, rows: number): Promise<string[]> {
    await db.sql(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, user_name text, full_name text, note text)`);
    await db.sql(`INSERT INTO ${table} (user_name, full_name) SELECT 'user' || g, 'First' || g || ' Last' || g FROM generate_series(1, ${rows}) g`);
    const dir = await planDir({ [`${table}-a.yaml`]: RENAME(table, SLOW, `${table}-a`), [`${table}-b.yaml`]: SPLIT(table, SLOW, `${table}-b`) });
    const args = ['--dir', dir, '--database-url', db.url];
    const out = await runCli(['plan', 'apply', '--phase', 'dual-write', ...args]);
    expect(out.code, out.stderr).toBe(0);
    return args;
  }

  /** Each plan's checkpoint, and the batch transactions its checkpoints recorded. */
  async function walks(table: string): Promise<{ plan: string; last_key: unknown; rows_done: number; finished: boolean; batches: string[] }[]> {
    return db.sql(
      `SELECT b.plan, b.last_key, b.rows_done::int AS rows_done, b.finished_at IS NOT NULL AS finished,
              coalesce((SELECT array_agg(x.xid::text ORDER BY x.xid::text) FROM pgshift.backfill_batches x WHERE x.plan = b.plan), '{}') AS batches
         FROM pgshift.backfill b WHERE b.plan LIKE $1 ORDER BY b.plan`,
      [`${table}-_`],
    );
  }

  /** Both plans' final checks passed: each recorded its own backfill phase as applied. */
  async function bothAtBackfill(table: string): Promise<void> {
    expect(await db.sql(`SELECT name, phase, status, unfinished_phase FROM pgshift.plans WHERE name LIKE $1 ORDER BY name`, [`${table}-_`])).toEqual([
      { name: `${table}-a`, phase: 'backfill', status: 'in_progress', unfinished_phase: null },
      { name: `${table}-b`, phase: 'backfill', status: 'in_progress', unfinished_phase: null },
    ]);
    expect(
      await db.sql(`SELECT plan, outcome FROM pgshift.events WHERE phase = 'backfill' AND action = 'apply' AND plan LIKE $1 ORDER BY plan, id`, [`${table}-_`]),
    ).toEqual([
      { plan: `${table}-a`, outcome: 'succeeded' },
      { plan: `${table}-b`, outcome: 'succeeded' },
    ]);
  }

  it("walk the table once, each row written once for both, with each plan's checkpoint and final check its own", async () => {
    const rows = 2_000;
    const args = await atDualWrite('walked', rows);
    const out = await runCli(['plan', 'apply', '--phase', 'next', '--no-json', ...args], { PGSHIFT_LOG_LEVEL: 'info' });
    expect(out.errors).toBe('');
    expect(out.code).toBe(0);
    expect(out.stderr).toContain('backfill of walked-a together with walked-b (one walk)');
    expect(out.stderr).not.toContain('backfill of walked-b');
    expect(out.stdout).toContain('walked-a: applied backfill; now at backfill');
    expect(out.stdout).toContain('walked-b: applied backfill; now at backfill');
    const [a, b] = await walks('walked');
    // One walk: the same batch transactions are both plans' batches, and every row's current version is one of them.
    expect(a!.batches.length).toBeGreaterThan(1);
    expect(b!.batches).toEqual(a!.batches);
    expect({ ...a, plan: 'walked-b' }).toEqual(b);
    expect(b).toMatchObject({ rows_done: rows, finished: true });
    const [versions] = await db.sql<{ rows: number; batch: number }>(
      `SELECT count(*)::int AS rows, count(*) FILTER (WHERE xmin::text = ANY ($1::text[]))::int AS batch FROM walked`,
      [(await db.sql<{ x: string }>(`SELECT pg_catalog.xid(xid)::text AS x FROM pgshift.backfill_batches WHERE plan = 'walked-a'`)).map((r) => r.x)],
    );
    expect(versions).toEqual({ rows, batch: rows });
    expect(await wrongRows('walked')).toBe(0);
    await bothAtBackfill('walked');
  });

  it('resume as one walk after the runner is killed mid-walk, both plans complete and right', async () => {
    const rows = 3_000;
    const args = await atDualWrite('killed', rows);
    // The application holds a row near the middle, so a batch is certainly in flight, waiting, when we kill.
    const app = await db.connect();
    await app.query('BEGIN');
    await app.query(`SELECT * FROM killed WHERE id = 2100 FOR UPDATE`);
    const env = { PGSHIFT_LOG_LEVEL: 'info' };
    const run = startCli(['plan', 'apply', '--phase', 'next', ...args], env);
    await waitFor('a batch waiting for the application', async () => {
      const [row] = await db.sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'pgshift %' AND wait_event = 'transactionid'`,
      );
      return row!.n > 0;
    });
    const before = await walks('killed');
    expect(before[0]!.rows_done).toBeGreaterThan(0);
    expect(before[0]!.rows_done).toBeLessThan(2_100);
    expect({ ...before[0], plan: 'killed-b' }).toEqual(before[1]);
    run.child.kill('SIGKILL');
    await run.done;
    await app.query('ROLLBACK');
    await app.end();
    await waitFor('the killed runner backends to end', async () => (await runnerBackend(db)) === undefined);
    // The batch in flight rolled back with both checkpoints; both plans say their backfill is half done.
    expect(await walks('killed')).toEqual(before);
    expect(await db.sql(`SELECT name, unfinished_phase, unfinished_action FROM pgshift.plans WHERE name LIKE 'killed-_' ORDER BY name`)).toEqual([
      { name: 'killed-a', unfinished_phase: 'backfill', unfinished_action: 'apply' },
      { name: 'killed-b', unfinished_phase: 'backfill', unfinished_action: 'apply' },
    ]);

    const resumed = await runCli(['plan', 'apply', '--phase', 'next', '--no-json', ...args], env);
    expect(resumed.errors).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(
      `resuming killed-a backfill together with killed-b (one walk) at key ${(before[0]!.last_key as string[])[0]} (${before[0]!.rows_done} of ~${rows} rows done)`,
    );
    const after = await walks('killed');
    expect(after[0]).toMatchObject({ rows_done: rows, finished: true });
    expect({ ...after[0], plan: 'killed-b' }).toEqual(after[1]);
    expect(await wrongRows('killed')).toBe(0);
    await bothAtBackfill('killed');
  });
});
