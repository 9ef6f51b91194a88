import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir } from '../helpers/fixtures.js';

/**
 * The `constrain` kind beyond the lifecycle table (test/db/roles.test.ts):
 * what lint refuses, old code's violating writes fixed by the trigger at
 * every phase it runs in, existing rows fixed by the backfill, each phase's
 * rollback, the constraints in the catalog at each end, and a foreign key's
 * locks in `plan show`.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.client.end().catch(() => undefined);
});

const cli = (dir: string, ...args: string[]) => runCli(['plan', ...args, '--dir', dir, '--database-url', db.url, '--json']);
const GUARDS = 'backfill: { batch_size: 25, pause: 0ms }\nguards: { lock_timeout: 2s, statement_timeout: 20s, retries: 3 }\n';

/** The table's constraints (name, type, validated) and whether email is NOT NULL. */
async function catalog(table: string): Promise<{ constraints: unknown[]; notNull: boolean }> {
  const constraints = await db.sql(
    `SELECT conname AS name, contype AS type, convalidated AS valid FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('c', 'f') ORDER BY conname`,
    [table],
  );
  const [column] = await db.sql<{ notNull: boolean }>(`SELECT attnotnull AS "notNull" FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'email'`, [
    table,
  ]);
  return { constraints, notNull: column!.notNull };
}

describe('constrain', () => {
  it('is refused up front without a fix while rows violate, naming how many and their keys, changing nothing', async () => {
    await db.sql(`CREATE TABLE leads (id bigserial PRIMARY KEY, email text)`);
    await db.sql(`INSERT INTO leads (email) SELECT CASE WHEN g % 4 = 0 THEN NULL ELSE 'l' || g || '@x.org' END FROM generate_series(1, 40) g`);
    const dir = await planDir({ 'constrain-leads-email.yaml': `table: leads\nconstrain: { column: email, not_null: true }\n` });
    for (const verb of ['lint', 'apply']) {
      const result = await cli(dir, verb);
      expect(result.code, verb).toBe(2);
      expect(result.errors).toMatch(
        /constrain\.fix: 10 row\(s\) of public\.leads would violate the constraint, e\.g\. id = 4; id = 8; id = 12; id = 16; id = 20; give constrain\.fix/,
      );
    }
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.plans`).catch(() => [{ n: 0 }])).toEqual([{ n: 0 }]);
    expect(await catalog('leads')).toEqual({ constraints: [], notNull: false });
  });

  it("fixes old code's writes and existing rows, validates without a long lock, and goes back from every phase", async () => {
    await db.sql(`CREATE TABLE members (id bigserial PRIMARY KEY, email text, note text)`);
    await db.sql(
      `INSERT INTO members (email) SELECT CASE WHEN g % 5 = 0 THEN NULL WHEN g % 7 = 0 THEN 'm' || g ELSE 'm' || g || '@x.org' END FROM generate_series(1, 200) g`,
    );
    const plan = 'constrain-members-email';
    const dir = await planDir({
      [`${plan}.yaml`]: `table: members\nconstrain:\n  column: email\n  not_null: true\n  check: "email like '%@%'"\n  fix: "coalesce(email, 'unknown') || '@fixed'"\n${GUARDS}`,
    });
    const lint = await cli(dir, 'lint');
    expect(lint.errors).toBe('');
    expect(lint.code).toBe(0);
    const to = async (verb: 'apply' | 'rollback', phase: string): Promise<void> => {
      const r = await cli(dir, verb, ...(verb === 'rollback' ? [plan] : []), '--phase', phase);
      expect(r.errors, `${verb} ${phase}`).toBe('');
      expect(r.code, `${verb} ${phase}`).toBe(0);
    };
    /** An old-code insert and update of violating values, and what they read back. */
    const oldWrites = async (): Promise<unknown[]> => {
      const [{ id }] = (await db.sql<{ id: string }>(`INSERT INTO members (email, note) VALUES (NULL, 'old') RETURNING id`)) as [{ id: string }];
      await db.sql(`UPDATE members SET email = 'nobody' WHERE id = 1`);
      return db.sql(`SELECT id::int, email FROM members WHERE id IN (1, $1) ORDER BY id`, [id]);
    };
    const violating = async (): Promise<number> =>
      (await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM members WHERE email IS NULL OR email NOT LIKE '%@%'`))[0]!.n;

    await to('apply', 'expand');
    expect(await catalog('members')).toEqual({ constraints: [], notNull: false });

    await to('apply', 'dual-write');
    const fixed = await oldWrites();
    expect(fixed).toEqual([
      { id: 1, email: 'nobody@fixed' },
      { id: expect.any(Number), email: 'unknown@fixed' },
    ]);
    expect(await catalog('members')).toEqual({
      constraints: [
        { name: 'members_email_check', type: 'c', valid: false },
        { name: 'members_email_pgshift_nn', type: 'c', valid: false },
      ],
      notNull: false,
    });
    // Back to expand: no trigger, no constraint, and old code's values are kept as written again.
    await to('rollback', 'expand');
    expect(await catalog('members')).toEqual({ constraints: [], notNull: false });
    const [{ email }] = (await db.sql<{ email: string | null }>(`INSERT INTO members (email) VALUES (NULL) RETURNING email`)) as [{ email: string | null }];
    expect(email).toBeNull();
    await to('apply', 'dual-write');

    expect(await violating()).toBeGreaterThan(0);
    await to('apply', 'backfill');
    expect(await violating()).toBe(0);
    expect(await db.sql(`SELECT email FROM members WHERE id IN (5, 7) ORDER BY id`)).toEqual([{ email: 'unknown@fixed' }, { email: 'm7@fixed' }]);
    await to('rollback', 'dual-write');
    await to('apply', 'backfill');

    await to('apply', 'switch-read');
    expect(await catalog('members')).toEqual({
      constraints: [
        { name: 'members_email_check', type: 'c', valid: true },
        { name: 'members_email_pgshift_nn', type: 'c', valid: true },
      ],
      notNull: false,
    });
    await oldWrites();
    await to('rollback', 'backfill');
    await to('apply', 'switch-read');

    await to('apply', 'stop-write');
    // Only new code runs: a violating write fails, as the constraint says.
    await expect(db.sql(`INSERT INTO members (email) VALUES (NULL)`)).rejects.toThrow(/members_email_pgshift_nn/);
    await to('rollback', 'switch-read');
    expect(await oldWrites()).toEqual([
      { id: 1, email: 'nobody@fixed' },
      { id: expect.any(Number), email: 'unknown@fixed' },
    ]);
    await to('apply', 'stop-write');

    await to('apply', 'contract');
    expect(await catalog('members')).toEqual({ constraints: [{ name: 'members_email_check', type: 'c', valid: true }], notNull: true });
    // Contract archives nothing here (the column stays): its rollback brings back the check and drops NOT NULL, at stop-write.
    await to('rollback', 'contract');
    expect(await cli(dir, 'status', plan).then((s) => (s.lines[0] as unknown as { phase: string }[])[0]!.phase)).toBe('stop-write');
    expect(await catalog('members')).toEqual({
      constraints: [
        { name: 'members_email_check', type: 'c', valid: true },
        { name: 'members_email_pgshift_nn', type: 'c', valid: true },
      ],
      notNull: false,
    });
    // Contract again proves NOT NULL from the check again without a scan.
    await to('apply', 'contract');
    expect(await catalog('members')).toEqual({ constraints: [{ name: 'members_email_check', type: 'c', valid: true }], notNull: true });
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'members'::regclass`)).toEqual([{ n: 0 }]);
  });

  it('adds a foreign key: orphans fixed to NULL, both tables claimed in show, validated in switch-read', async () => {
    await db.sql(`CREATE TABLE teams (id bigint PRIMARY KEY); INSERT INTO teams SELECT generate_series(1, 10)`);
    await db.sql(`CREATE TABLE players (id bigserial PRIMARY KEY, team_id bigint); INSERT INTO players (team_id) SELECT g % 15 FROM generate_series(1, 60) g`);
    const plan = 'constrain-players-team';
    const dir = await planDir({
      [`${plan}.yaml`]: `table: players\nconstrain: { column: team_id, foreign_key: { references: public.teams(id) }, fix: "null" }\n${GUARDS}`,
    });
    const shown = await cli(dir, 'show', plan, '--phase', 'dual-write');
    const steps = (shown.lines[0] as { apply: { statements?: string[]; lock?: string; locks?: { table: { name: string }; mode: string }[] }[] }).apply;
    const add = steps.find((s) => s.statements?.some((t) => t.includes('FOREIGN KEY')));
    expect(add?.statements).toEqual([
      'ALTER TABLE "public"."players" ADD CONSTRAINT "players_team_id_fkey" FOREIGN KEY ("team_id") REFERENCES "public"."teams" ("id") NOT VALID',
    ]);
    expect(add?.locks?.map((l) => [l.table.name, l.mode])).toEqual([
      ['players', 'SHARE ROW EXCLUSIVE'],
      ['teams', 'SHARE ROW EXCLUSIVE'],
    ]);
    const orphans = async (): Promise<number> =>
      (
        await db.sql<{ n: number }>(
          `SELECT count(*)::int AS n FROM players p WHERE team_id IS NOT NULL AND NOT EXISTS (SELECT FROM teams t WHERE t.id = p.team_id)`,
        )
      )[0]!.n;
    expect(await orphans()).toBeGreaterThan(0);
    for (const phase of ['dual-write', 'backfill', 'switch-read']) {
      const r = await cli(dir, 'apply', '--phase', phase);
      expect(r.errors, phase).toBe('');
      if (phase === 'dual-write') {
        const [{ team_id }] = (await db.sql<{ team_id: string | null }>(`INSERT INTO players (team_id) VALUES (99) RETURNING team_id`)) as [
          { team_id: string | null },
        ];
        expect(team_id).toBeNull();
      }
    }
    expect(await orphans()).toBe(0);
    expect(await db.sql(`SELECT convalidated AS valid FROM pg_constraint WHERE conname = 'players_team_id_fkey'`)).toEqual([{ valid: true }]);
    const back = await cli(dir, 'rollback', plan, '--phase', 'expand');
    expect(back.errors).toBe('');
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_constraint WHERE conname = 'players_team_id_fkey'`)).toEqual([{ n: 0 }]);
  });
});
