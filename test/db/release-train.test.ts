import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir } from '../helpers/fixtures.js';

/**
 * A release train: a pipeline runs `apply --phase next` over the whole
 * folder at every release. Plans on one table whose columns overlap go one
 * after the other, in file order or as `after:` says; a plan whose turn has
 * not come waits, which is not an error (exit 0), and starts once the plan
 * before it is contracted. Plans on one table with disjoint columns move
 * together.
 */

const PLANS = new URL('../../plans/', import.meta.url).pathname;
const SCHEMA = new URL('../../examples/schema.sql', import.meta.url);

describe("the project's own plans folder", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase();
    await db.sql(await readFile(SCHEMA, 'utf8'));
  });

  it('reaches contract with every plan by one apply --phase next per release, exiting 0 each time', async () => {
    const args = ['--dir', PLANS, '--database-url', db.url];
    // Named alone, a plan is still placed by the whole folder: the rename before it on its table shares no column with it.
    const named = await runCli(['plan', 'status', 'split-users-full-name', '--json', ...args]);
    expect(named.lines[0]).toEqual([expect.objectContaining({ plan: 'split-users-full-name', status: 'not_started', waiting: null })]);
    const releases: string[][] = [];
    for (let release = 1; release <= 20; release++) {
      const status = await runCli(['plan', 'status', '--json', ...args]);
      const rows = status.lines[0] as unknown as { plan: string; status: string }[];
      if (rows.every((r) => r.status === 'complete')) break;
      const out = await runCli(['plan', 'apply', '--phase', 'next', '--no-json', ...args]);
      expect(out.errors, `release ${release}`).toBe('');
      expect(out.code, `release ${release}`).toBe(0);
      // The backfill's progress lines aside: what each plan did.
      releases.push(
        out.stdout
          .trim()
          .split('\n')
          .filter((line) => !/ backfill: \d+\/\d+ rows/.test(line)),
      );
      if (release === 3) {
        // Both users plans were at backfill in this release: one walk filled both, its batches in the checkpoints of each.
        const batches = await db.sql<{ plan: string; xids: string[] }>(
          `SELECT plan, array_agg(xid::text ORDER BY xid::text) AS xids FROM pgshift.backfill_batches
            WHERE plan IN ('rename-users-user-name', 'split-users-full-name') GROUP BY plan ORDER BY plan`,
        );
        expect(batches).toHaveLength(2);
        expect(batches[0]!.xids.length).toBeGreaterThan(0);
        expect(batches[1]!.xids).toEqual(batches[0]!.xids);
      }
    }
    // Three tables have two plans each, on disjoint columns: every plan starts at the first release and moves at each.
    const phases = ['expand', 'dual-write', 'backfill', 'switch-read', 'stop-write', 'contract'];
    const plans = [
      'add-orders-currency',
      'constrain-subscribers-email',
      'drop-customers-fax',
      'index-accounts-email',
      'merge-customers-address',
      'rename-table-suppliers-vendors',
      'rename-users-user-name',
      'retype-orders-price',
      'split-users-full-name',
    ];
    expect(releases).toEqual(phases.map((phase) => plans.map((plan) => `${plan}: applied ${phase}; now at ${phase}`)));
    const final = await runCli(['plan', 'status', '--json', ...args]);
    expect((final.lines[0] as unknown as { status: string }[]).map((r) => r.status)).toEqual(Array(9).fill('complete'));
    // Every plan of the folder through six phases, one CLI run per plan and release: it grows with plans/.
  }, 600_000);
});

describe('plans that depend on each other', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase();
    await db.sql(`CREATE TABLE people (id bigserial PRIMARY KEY, user_name text, full_name text)`);
    await db.sql(`INSERT INTO people (user_name, full_name) SELECT 'u' || g, 'First' || g || ' Last' || g FROM generate_series(1, 200) g`);
  });

  it('starts a plan that reads a column another makes only once that one is contracted, and says what it waits for meanwhile', async () => {
    // b-retype works on `login`, which a-rename makes: in file order it goes second, and its catalog check could not pass before.
    const dir = await planDir({
      'a-rename.yaml': `plan: a-rename\ntable: public.people\nrename: { column: user_name, to: login }\n`,
      'b-retype.yaml': `plan: b-retype\ntable: public.people\nretype: { column: login, to: varchar(40), using: "login::varchar(40)", reverse: "login::text" }\n`,
    });
    const args = ['--dir', dir, '--database-url', db.url];
    // Named alone before anything started, b-retype is placed by the whole folder: behind a-rename, which shares login with it.
    const before = await runCli(['plan', 'status', 'b-retype', '--json', ...args]);
    expect(before.lines[0]).toEqual([
      expect.objectContaining({ plan: 'b-retype', status: 'not_started', waiting: { behind: 'a-rename', at: null, status: 'not_started' } }),
    ]);
    const first = await runCli(['plan', 'apply', '--phase', 'next', '--no-json', ...args]);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('a-rename: applied expand; now at expand');
    expect(first.stdout).toContain('b-retype: waiting behind a-rename (at expand)');
    const status = await runCli(['plan', 'status', 'b-retype', '--json', ...args]);
    expect(status.lines[0]).toEqual([
      expect.objectContaining({ plan: 'b-retype', status: 'not_started', waiting: { behind: 'a-rename', at: 'expand', status: 'in_progress' } }),
    ]);
    // Naming the waiting plan alone changes nothing: its turn has not come.
    const named = await runCli(['plan', 'apply', 'b-retype', '--phase', 'contract', '--json', ...args]);
    expect(named.code).toBe(0);
    expect(named.lines).toEqual([
      expect.objectContaining({ plan: 'b-retype', phases: [], waiting: { behind: 'a-rename', at: 'expand', status: 'in_progress' } }),
    ]);

    const toContract = await runCli(['plan', 'apply', 'a-rename', '--phase', 'contract', ...args]);
    expect(toContract.code).toBe(0);
    const second = await runCli(['plan', 'apply', '--phase', 'contract', '--json', ...args]);
    expect(second.errors).toBe('');
    expect(second.code).toBe(0);
    expect(second.lines).toContainEqual(expect.objectContaining({ plan: 'b-retype', to: 'contract' }));
    // The retype's new column keeps its name (login_new, as new code reads it); the old one is gone.
    expect(
      await db.sql(
        `SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'people'::regclass AND attname LIKE 'login%' AND NOT attisdropped`,
      ),
    ).toEqual([{ attname: 'login_new', type: 'character varying(40)' }]);
  });

  it('ships a plan named by after: first whatever the file names, and lint refuses an order nobody can keep', async () => {
    await db.sql(`CREATE TABLE staff (id bigserial PRIMARY KEY, legacy text, full_name text)`);
    await db.sql(`INSERT INTO staff (legacy, full_name) SELECT 'l' || g, 'First' || g || ' Last' || g FROM generate_series(1, 100) g`);
    const dir = await planDir({
      'a-split.yaml':
        `plan: a-split\ntable: public.staff\nafter: z-first\n` +
        `split: { column: full_name, into: [{ name: first_name, type: text, using: "split_part(full_name, ' ', 1)" }, { name: last_name, type: text, using: "split_part(full_name, ' ', 2)" }], reverse: "concat_ws(' ', first_name, last_name)" }\n`,
      'z-first.yaml': `plan: z-first\ntable: public.staff\ndrop: { column: legacy }\n`,
    });
    const args = ['--dir', dir, '--database-url', db.url];
    const out = await runCli(['plan', 'apply', '--phase', 'next', '--no-json', ...args]);
    expect(out.code).toBe(0);
    expect(out.stdout.trim().split('\n')).toEqual(['z-first: applied expand; now at expand', 'a-split: waiting behind z-first (at expand)']);

    const circle = await planDir({
      'a.yaml': `plan: a\ntable: public.people\nafter: b\nrename: { column: full_name, to: name }\n`,
      'b.yaml': `plan: b\ntable: public.people\nafter: a\ndrop: { column: id }\n`,
    });
    const lint = await runCli(['plan', 'lint', '--dir', circle, '--database-url', db.url]);
    expect(lint.code).toBe(2);
    expect(lint.errors).toMatch(/a\.yaml.*after.*the plans wait for each other in a circle \(a → b → a\)/);
    const refused = await runCli(['plan', 'apply', '--phase', 'next', '--dir', circle, '--database-url', db.url]);
    expect(refused.code).toBe(2);
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.plans WHERE name IN ('a', 'b')`)).toEqual([{ n: 0 }]);
  });
});
