import { beforeAll, describe, expect, it } from 'vitest';
import { apply, lint, LockTimeoutError, PhaseFailedError, PlanError, purge, rollback, show, type Phase } from '../../src/index.js';
import { PHASES, phaseIndex } from '../../src/phases/phases.js';
import { describeDatabase } from '../helpers/catalog.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, splitPlanYaml } from '../helpers/fixtures.js';

/**
 * Views that read the column a plan replaces go along: a view on the old
 * column, a view over that view, and a materialized view (with a unique
 * index, a grant and a comment). Old code reads them at every phase, new
 * code writes its own columns from switch-read on, rollback restores the
 * original definitions, and contract drops the old column while the views
 * keep answering the same rows.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  // PostgreSQL 14 still lets PUBLIC create in schema public (15+ does not), which lint warns about: make both alike.
  await db.sql(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
});

const BACKFILL = '{ batch_size: 100, pause: 0ms }';
const GUARDS = '{ lock_timeout: 1s, statement_timeout: 20s, retries: 2 }';

const schemaSql = (s: string): string => `
  CREATE SCHEMA ${s};
  CREATE TABLE ${s}.users (id int PRIMARY KEY, full_name text NOT NULL, email text);
  INSERT INTO ${s}.users SELECT g, 'First' || g || ' Last' || g, 'u' || g || '@example.com' FROM generate_series(1, 60) g;
  CREATE VIEW ${s}.names WITH (security_barrier) AS
    SELECT id, full_name, upper(full_name) AS shout FROM ${s}.users WHERE full_name <> '' ;
  CREATE VIEW ${s}.even_names AS SELECT n.id, n.full_name FROM ${s}.names n WHERE n.id % 2 = 0;
  CREATE MATERIALIZED VIEW ${s}.name_lengths AS SELECT id, full_name, length(full_name) AS len FROM ${s}.users;
  CREATE UNIQUE INDEX name_lengths_id ON ${s}.name_lengths (id);
  GRANT SELECT ON ${s}.name_lengths TO PUBLIC;
  COMMENT ON MATERIALIZED VIEW ${s}.name_lengths IS 'lengths';
  CREATE VIEW ${s}.long_names AS SELECT id FROM ${s}.name_lengths WHERE len > 20;
`;

interface Kind {
  readonly yaml: (s: string) => string;
  /** The column(s) new code writes, for a full name. */
  readonly newWrite: (full: string) => Record<string, string>;
  /** A word only the rewritten definitions contain. */
  readonly newColumn: string;
}

const KINDS: Record<string, Kind> = {
  rename: {
    yaml: (s) => `
plan: rename-${s.replaceAll('_', '-')}
table: ${s}.users
rename: { column: full_name, to: display_name }
backfill: ${BACKFILL}
guards: ${GUARDS}`,
    newWrite: (full) => ({ display_name: full }),
    newColumn: 'display_name',
  },
  split: {
    yaml: (s) => splitPlanYaml(`split-${s.replaceAll('_', '-')}`, `${s}.users`, BACKFILL, GUARDS),
    newWrite: (full) => ({ first_name: full.split(' ')[0]!, last_name: full.split(' ')[1]! }),
    newColumn: 'last_name',
  },
  // A type PostgreSQL could change in place: the views make pgshift copy instead, so they can move over.
  retype: {
    yaml: (s) => `
plan: retype-${s.replaceAll('_', '-')}
table: ${s}.users
retype: { column: full_name, to: "varchar(100)", using: "full_name::varchar(100)", reverse: "full_name::text" }
backfill: ${BACKFILL}
guards: ${GUARDS}`,
    newWrite: (full) => ({ full_name_new: full }),
    newColumn: 'full_name_new',
  },
};

const VIEWS = ['names', 'even_names', 'name_lengths', 'long_names'] as const;

async function definitions(s: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const v of VIEWS) out[v] = (await db.sql<{ d: string }>(`SELECT pg_get_viewdef('${s}.${v}'::regclass, true) AS d`))[0]!.d;
  return out;
}

/** What the three relations must answer, from the names the test wrote. */
async function expectViews(s: string, names: ReadonlyMap<number, string>, at: string): Promise<void> {
  const ids = [...names.keys()].sort((a, b) => a - b);
  const rows = await db.sql(`SELECT id, full_name, shout FROM ${s}.names ORDER BY id`);
  expect(rows, `names at ${at}`).toEqual(ids.map((id) => ({ id, full_name: names.get(id), shout: names.get(id)!.toUpperCase() })));
  const even = await db.sql(`SELECT id, full_name FROM ${s}.even_names ORDER BY id`);
  expect(even, `even_names at ${at}`).toEqual(ids.filter((id) => id % 2 === 0).map((id) => ({ id, full_name: names.get(id) })));
  // Applications refresh a materialized view; CONCURRENTLY needs its unique index, so it proves the index is there.
  await db.sql(`REFRESH MATERIALIZED VIEW CONCURRENTLY ${s}.name_lengths`);
  const lengths = await db.sql(`SELECT id, full_name, len FROM ${s}.name_lengths ORDER BY id`);
  expect(lengths, `name_lengths at ${at}`).toEqual(ids.map((id) => ({ id, full_name: names.get(id), len: names.get(id)!.length })));
  const long = await db.sql(`SELECT id FROM ${s}.long_names ORDER BY id`);
  expect(long, `long_names (over the materialized view) at ${at}`).toEqual(ids.filter((id) => names.get(id)!.length > 20).map((id) => ({ id })));
  const extras = await db.sql<{ grant: boolean; comment: string }>(
    `SELECT EXISTS (SELECT 1 FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = '${s}.name_lengths'::regclass AND a.grantee = 0 AND a.privilege_type = 'SELECT') AS grant,
            obj_description('${s}.name_lengths'::regclass, 'pg_class') AS comment`,
  );
  expect(extras[0], `grant and comment of name_lengths at ${at}`).toEqual({ grant: true, comment: 'lengths' });
  const barrier = await db.sql<{ o: string[] }>(`SELECT reloptions AS o FROM pg_class WHERE oid = '${s}.names'::regclass`);
  expect(barrier[0]!.o, `options of names at ${at}`).toEqual(['security_barrier=true']);
}

/** Which code versions may run once `phase` is applied (design §2). */
const oldCodeAt = (phase: Phase | null): boolean => phaseIndex(phase) <= phaseIndex('switch-read');
const newCodeAt = (phase: Phase | null): boolean => phaseIndex(phase) >= phaseIndex('switch-read');

describe.each(Object.keys(KINDS))('%s: dependent views go along', (kindName) => {
  const kind = KINDS[kindName]!;
  const s = `views_${kindName}`;
  const p = plan(kind.yaml(s));
  const options = { databaseUrl: '' };
  const names = new Map<number, string>();
  let next = 1000;

  /** Writes from every code version that may run at `phase`; the ledger says what the views must show. */
  async function writeAt(phase: Phase | null): Promise<void> {
    if (oldCodeAt(phase)) {
      const id = next++;
      await db.sql(`INSERT INTO ${s}.users (id, full_name) VALUES ($1, $2)`, [id, `Old${id} Writer${id}`]);
      names.set(id, `Old${id} Writer${id}`);
      await db.sql(`UPDATE ${s}.users SET full_name = $2 WHERE id = $1`, [2, `Renamed${id} Two`]);
      names.set(2, `Renamed${id} Two`);
    }
    if (newCodeAt(phase)) {
      const id = next++;
      const values = kind.newWrite(`New${id} Writer${id}`);
      const cols = Object.keys(values);
      await db.sql(`INSERT INTO ${s}.users (id, ${cols.join(', ')}) VALUES ($1, ${cols.map((_, i) => `$${i + 2}`).join(', ')})`, [
        id,
        ...Object.values(values),
      ]);
      names.set(id, `New${id} Writer${id}`);
      const update = kind.newWrite(`Newer${id} Four`);
      await db.sql(
        `UPDATE ${s}.users SET ${Object.keys(update)
          .map((c, i) => `${c} = $${i + 2}`)
          .join(', ')} WHERE id = $1`,
        [4, ...Object.values(update)],
      );
      names.set(4, `Newer${id} Four`);
    }
  }

  it('keeps every view answering through all six phases, and rollback restores the original definitions', async () => {
    await db.sql(schemaSql(s));
    for (let i = 1; i <= 60; i++) names.set(i, `First${i} Last${i}`);
    const run = { ...options, databaseUrl: db.url };
    const original = await definitions(s);
    await expectViews(s, names, 'start');

    // Forward to stop-write, where the views move to the new columns, checking reads at every phase.
    for (const phase of PHASES.slice(0, PHASES.indexOf('stop-write') + 1)) {
      const [outcome] = await apply([p], 'next', run);
      expect(outcome!.error, `apply ${phase}`).toBeUndefined();
      await writeAt(phase);
      await expectViews(s, names, phase);
    }
    const moved = await definitions(s);
    expect(moved.names).toContain(kind.newColumn);
    // Nothing reads the old column any more but the parked original materialized view (kept for
    // stop-write's rollback, dropped by contract), as the catalog's dependencies say.
    expect(
      await db.sql(
        `SELECT DISTINCT r.ev_class::regclass::text AS v FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
          WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = '${s}.users'::regclass
            AND d.refobjsubid = (SELECT attnum FROM pg_attribute WHERE attrelid = '${s}.users'::regclass AND attname = 'full_name')`,
      ),
    ).toEqual([{ v: `${s}.name_lengths_pgshift_old` }]);
    expect(moved.name_lengths).toContain(kind.newColumn);
    // The view over the view needs no redefinition: its inner view kept its columns;
    // the view over the materialized view reads the copy under the same name.
    expect(moved.even_names).toBe(original.even_names);
    expect(moved.long_names).toBe(original.long_names);
    const shown = (await show(p, 'stop-write', run))[0]!;
    expect(JSON.stringify(shown.apply)).toContain('CREATE OR REPLACE VIEW');
    expect(JSON.stringify(shown.rollback)).toContain('swap the original materialized view');

    // Back one phase at a time to nothing: the original definitions return at stop-write's rollback.
    for (const phase of [...PHASES.slice(0, PHASES.indexOf('stop-write') + 1)].reverse()) {
      const back = await rollback(p, 'current', run);
      expect(back.error, `rollback of ${phase}`).toBeUndefined();
      expect(await definitions(s), `definitions after rolling back ${phase}`).toEqual(original);
      const below = PHASES[PHASES.indexOf(phase) - 1] ?? null;
      await writeAt(below);
      await expectViews(s, names, `rollback of ${phase}`);
    }
    expect(await db.sql(`SELECT relname FROM pg_class WHERE relname LIKE 'name_lengths_pgshift%'`)).toEqual([]);

    // And all the way through contract: the old column is archived, the views keep answering; purge drops it and the parked originals.
    for (const phase of PHASES) {
      const [outcome] = await apply([p], 'next', run);
      expect(outcome!.error, `apply ${phase} again`).toBeUndefined();
      await writeAt(phase);
      await expectViews(s, names, `${phase} (second run)`);
    }
    await purge(p, run);
    await expectViews(s, names, 'purge');
    expect(await db.sql(`SELECT attname FROM pg_attribute WHERE attrelid = '${s}.users'::regclass AND attname = 'full_name' AND NOT attisdropped`)).toEqual([]);
    expect(await db.sql(`SELECT relname FROM pg_class WHERE relname LIKE 'name_lengths_pgshift%'`)).toEqual([]);
    const final = await definitions(s);
    expect(final.even_names).toBe(original.even_names);
    expect(final.long_names).toBe(original.long_names);
  });
});

describe('readers during the redefinitions', () => {
  it('concurrent readers of every view see no error and the same rows from the plan start, while stop-write swaps them back and forth, through contract', async () => {
    const s = 'views_live';
    await db.sql(schemaSql(s));
    const p = plan(KINDS.split!.yaml(s));
    const run = { databaseUrl: db.url };
    const queries = [
      `SELECT count(*)::int AS n, max(shout) AS m FROM ${s}.names`,
      `SELECT count(*)::int AS n, max(full_name) AS m FROM ${s}.even_names`,
      `SELECT count(*)::int AS n, max(full_name) AS m FROM ${s}.name_lengths`,
      `SELECT count(*)::int AS n, max(id)::text AS m FROM ${s}.long_names`,
    ];
    const expected = await Promise.all(queries.map(async (q) => (await db.sql(q))[0]));
    let stop = false;
    const errors: string[] = [];
    const wrong: string[] = [];
    let reads = 0;
    const readers = await Promise.all([db.connect(), db.connect()]);
    const loops = readers.map(async (c, r) => {
      for (let i = r; !stop; i++) {
        const q = queries[i % queries.length]!;
        try {
          const { rows } = await c.query(q);
          reads++;
          if (JSON.stringify(rows[0]) !== JSON.stringify(expected[i % queries.length])) wrong.push(`${q}: ${JSON.stringify(rows[0])}`);
        } catch (error) {
          errors.push(`${q}: ${(error as Error).message}`);
        }
      }
    });
    try {
      // From the plan's start (where the definitions are computed under the table's lock) to contract.
      for (const step of ['switch-read', 'stop-write', 'rollback', 'stop-write', 'contract'] as const) {
        const before = reads;
        const outcome = step === 'rollback' ? await rollback(p, 'current', run) : (await apply([p], step, run))[0]!;
        expect(outcome.error, step).toBeUndefined();
        // Let the readers go around at least once between two steps.
        while (reads < before + 2 * queries.length) await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      stop = true;
      await Promise.all(loops);
      await Promise.all(readers.map((c) => c.end()));
    }
    expect(errors).toEqual([]);
    expect(wrong).toEqual([]);
    expect(reads).toBeGreaterThan(8 * queries.length);
  });
});

describe('a view someone redefines while the plan is in flight', () => {
  it('is not overwritten by stop-write, and does not keep the plan from rolling back', async () => {
    await db.sql(`
      CREATE SCHEMA changed;
      CREATE TABLE changed.users (id int PRIMARY KEY, full_name text);
      CREATE VIEW changed.names AS SELECT id, full_name FROM changed.users;`);
    const p = plan(`
plan: rename-changed
table: changed.users
rename: { column: full_name, to: display_name }
guards: ${GUARDS}`);
    const run = { databaseUrl: db.url };
    expect((await apply([p], 'switch-read', run))[0]!.error).toBeUndefined();
    await db.sql(`CREATE OR REPLACE VIEW changed.names AS SELECT id, full_name FROM changed.users WHERE id > 0`);
    const theirs = await db.sql(`SELECT pg_get_viewdef('changed.names'::regclass, true) AS d`);
    const [outcome] = await apply([p], 'stop-write', run);
    expect(outcome!.error).toBeInstanceOf(PhaseFailedError);
    expect(outcome!.error!.message).toMatch(/view changed\.names was redefined after the plan started; pgshift will not replace it/);
    expect(await db.sql(`SELECT pg_get_viewdef('changed.names'::regclass, true) AS d`)).toEqual(theirs);
    const back = await rollback(p, 'expand', run);
    expect(back.error).toBeUndefined();
    expect(await db.sql(`SELECT pg_get_viewdef('changed.names'::regclass, true) AS d`)).toEqual(theirs);
  });
});

describe('what cannot go along is refused up front', () => {
  it('refuses a rule and a materialized view that another materialized view reads, naming them, and changes nothing', async () => {
    await db.sql(`
      CREATE SCHEMA refusals;
      CREATE TABLE refusals.users (id int PRIMARY KEY, full_name text);
      CREATE TABLE refusals.log (full_name text);
      CREATE RULE log_names AS ON UPDATE TO refusals.users DO ALSO INSERT INTO refusals.log VALUES (new.full_name);
      CREATE MATERIALIZED VIEW refusals.snap AS SELECT id, full_name FROM refusals.users;
      CREATE MATERIALIZED VIEW refusals.on_snap AS SELECT full_name FROM refusals.snap;`);
    const before = await describeDatabase(db);
    const p = plan(`
plan: rename-refused
table: refusals.users
rename: { column: full_name, to: display_name }`);
    const [outcome] = await apply([p], 'expand', { databaseUrl: db.url });
    expect(outcome!.error).toBeInstanceOf(PlanError);
    const message = outcome!.error!.message;
    expect(message).toMatch(/rule log_names on table refusals\.users \(a rule, not a view\).*replace it by a trigger/);
    expect(message).toMatch(/materialized view refusals\.snap reads the column and is used by materialized view refusals\.on_snap.*make it read a plain view/);
    await expect(lint([p], { databaseUrl: db.url })).rejects.toBeInstanceOf(PlanError);
    expect(await describeDatabase(db)).toEqual(before);
  });

  it('refuses a view that would still read the old column (JOIN … USING), naming it, and changes nothing', async () => {
    await db.sql(`
      CREATE SCHEMA joined;
      CREATE TABLE joined.users (id int PRIMARY KEY, full_name text);
      CREATE TABLE joined.notes (full_name text, note text);
      CREATE VIEW joined.user_notes AS SELECT * FROM joined.users JOIN joined.notes USING (full_name);`);
    const before = await describeDatabase(db);
    const p = plan(splitPlanYaml('split-joined', 'joined.users', BACKFILL, GUARDS));
    const [outcome] = await apply([p], 'expand', { databaseUrl: db.url });
    expect(outcome!.error).toBeInstanceOf(PlanError);
    expect(outcome!.error!.message).toMatch(/view joined\.user_notes reads "full_name" and cannot be redefined.*JOIN … USING.*Without downtime/);
    expect(await describeDatabase(db)).toEqual(before);
  });

  it('lint never takes the table lock; apply computes the definitions once nobody is in the way and gives up with exit 3 after max_wait', async () => {
    await db.sql(`
      CREATE SCHEMA locked;
      CREATE TABLE locked.users (id int PRIMARY KEY, full_name text);
      CREATE VIEW locked.names AS SELECT id, full_name FROM locked.users;`);
    const p = plan(`
plan: rename-locked
table: locked.users
rename: { column: full_name, to: display_name }
guards: { lock_timeout: 100ms, retries: 0, max_wait: 500ms }`);
    const reader = await db.connect();
    try {
      // A long reader holds ACCESS SHARE: anything wanting ACCESS EXCLUSIVE waits for it.
      await reader.query('BEGIN; SELECT * FROM locked.names');
      expect(await lint([p], { databaseUrl: db.url })).toEqual([{ plan: 'rename-locked', outcome: 'checked', warnings: [] }]);
      const [outcome] = await apply([p], 'expand', { databaseUrl: db.url });
      expect(outcome!.error).toBeInstanceOf(LockTimeoutError);
      expect(outcome!.error!.message).toMatch(/compute the dependent views' definitions/);
      // It waited outside the queue and names who was in the way.
      expect(outcome!.error!.message).toMatch(/after 0 attempt\(s\)[\s\S]*AccessShareLock on locked\.users/);
    } finally {
      await reader.query('ROLLBACK');
      await reader.end();
    }
    expect(await db.sql(`SELECT attname FROM pg_attribute WHERE attrelid = 'locked.users'::regclass AND attnum > 0 ORDER BY attnum`)).toEqual([
      { attname: 'id' },
      { attname: 'full_name' },
    ]);
    const [outcome] = await apply([p], 'expand', { databaseUrl: db.url });
    expect(outcome!.error).toBeUndefined();
  });
});
