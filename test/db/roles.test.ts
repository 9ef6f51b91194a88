import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHANGE_KINDS, type ChangeKind } from '../../src/changes/kinds/registry.js';
import { phaseIndex, type Phase } from '../../src/phases/phases.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir } from '../helpers/fixtures.js';

/**
 * The production setup: pgshift runs as the table's owner (not a superuser),
 * the application as a role with only DML on the table, and a read-only role
 * reads `pgshift.phase()`. Through every phase of every kind, and back from
 * each (contract included), the application's writes never fail and land on both sides, and the
 * reader always reads the phase. No grant is made by hand on anything of
 * pgshift's.
 */

let db: TestDatabase;
let runnerUrl: string;
let app: pg.Client;
let reader: pg.Client;
const roles = { runner: '', app: '', reader: '' };

function urlFor(role: string): string {
  const url = new URL(db.url);
  url.username = role;
  url.password = 'pw';
  return url.toString();
}

async function login(role: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: urlFor(role) });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

beforeAll(async () => {
  db = await freshDatabase();
  const suffix = db.name.replace(/^pgshift_/, '');
  roles.runner = `runner_${suffix}`;
  roles.app = `app_rw_${suffix}`;
  roles.reader = `app_ro_${suffix}`;
  for (const r of Object.values(roles)) await db.sql(`CREATE ROLE ${r} LOGIN PASSWORD 'pw' NOSUPERUSER`);
  // The runner may create pgshift's schema; it owns the tables it changes.
  await db.sql(`GRANT CREATE ON DATABASE ${db.name} TO ${roles.runner}`);
  runnerUrl = urlFor(roles.runner);
  app = await login(roles.app);
  reader = await login(roles.reader);
});

afterAll(async () => {
  await app?.end().catch(() => undefined);
  await reader?.end().catch(() => undefined);
  // Roles are cluster-wide: drop what they own and them with the test.
  for (const r of Object.values(roles)) {
    if (!r) continue;
    await db.sql(`DROP OWNED BY ${r} CASCADE`).catch(() => undefined);
  }
  await db.client.end().catch(() => undefined);
});

/** One write the application makes, and what each side must then read. */
interface Write {
  readonly columns: Record<string, string>;
  readonly reads: Record<string, string | null>;
}

interface Kind {
  readonly ddl: (t: string) => string;
  readonly yaml: (schema: string) => string;
  readonly old: (i: number) => Write;
  readonly new: (i: number) => Write;
  /** The table's name each code version uses, when they differ (rename-table); default `people`. */
  readonly tables?: { readonly old: string; readonly new: string };
}

const GUARDS = 'backfill: { batch_size: 40, pause: 0ms }\nguards: { lock_timeout: 2s, statement_timeout: 20s, retries: 3 }';

/** One row per change kind: a kind added to the registry without its row fails the type check. */
const KINDS: Record<ChangeKind, Kind> = {
  rename: {
    ddl: (t) => `CREATE TABLE ${t} (id bigserial PRIMARY KEY, full_name text NOT NULL DEFAULT 'anonymous', note text)`,
    yaml: (s) => `plan: roles-rename\ntable: ${s}.people\nrename: { column: full_name, to: display_name }\n${GUARDS}`,
    old: (i) => ({ columns: { full_name: `Old ${i}` }, reads: { full_name: `Old ${i}`, display_name: `Old ${i}` } }),
    new: (i) => ({ columns: { display_name: `New ${i}` }, reads: { full_name: `New ${i}`, display_name: `New ${i}` } }),
  },
  split: {
    ddl: (t) => `CREATE TABLE ${t} (id bigserial PRIMARY KEY, full_name text NOT NULL DEFAULT 'anonymous', note text)`,
    yaml: (s) =>
      `plan: roles-split\ntable: ${s}.people\nsplit:\n  column: full_name\n  into:\n` +
      `    - { name: first_name, type: text, using: "split_part(full_name, ' ', 1)" }\n` +
      `    - { name: last_name, type: text, using: "nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)" }\n` +
      `  reverse: "concat_ws(' ', first_name, last_name)"\n${GUARDS}`,
    old: (i) => ({ columns: { full_name: `Old${i} Writer` }, reads: { full_name: `Old${i} Writer`, first_name: `Old${i}`, last_name: 'Writer' } }),
    new: (i) => ({
      columns: { first_name: `New${i}`, last_name: 'Writer' },
      reads: { full_name: `New${i} Writer`, first_name: `New${i}`, last_name: 'Writer' },
    }),
  },
  merge: {
    ddl: (t) => `CREATE TABLE ${t} (id bigserial PRIMARY KEY, street text NOT NULL DEFAULT 'nowhere', city text, note text)`,
    yaml: (s) =>
      `plan: roles-merge\ntable: ${s}.people\nmerge:\n  columns: [street, city]\n  into: { name: address, type: text, using: "concat_ws(', ', street, city)" }\n` +
      `  reverse:\n    street: "split_part(address, ', ', 1)"\n    city: "split_part(address, ', ', 2)"\n${GUARDS}`,
    old: (i) => ({ columns: { street: `${i} Old St`, city: 'Lyon' }, reads: { street: `${i} Old St`, city: 'Lyon', address: `${i} Old St, Lyon` } }),
    new: (i) => ({ columns: { address: `${i} New St, Nice` }, reads: { street: `${i} New St`, city: 'Nice', address: `${i} New St, Nice` } }),
  },
  retype: {
    ddl: (t) => `CREATE TABLE ${t} (id bigserial PRIMARY KEY, price text NOT NULL DEFAULT '0.00', note text)`,
    yaml: (s) =>
      `plan: roles-retype\ntable: ${s}.people\nretype: { column: price, to: "numeric(10,2)", using: "price::numeric(10,2)", reverse: "price::text" }\n${GUARDS}`,
    old: (i) => ({ columns: { price: `${i}.25` }, reads: { price: `${i}.25`, price_new: `${i}.25` } }),
    new: (i) => ({ columns: { price_new: `${i}.75` }, reads: { price: `${i}.75`, price_new: `${i}.75` } }),
  },
  drop: {
    // NOT NULL without a default: new code, which leaves the column out, gets drop.default from expand on.
    ddl: (t) => `CREATE TABLE ${t} (id bigserial PRIMARY KEY, legacy_code text NOT NULL, note text)`,
    yaml: (s) => `plan: roles-drop\ntable: ${s}.people\ndrop: { column: legacy_code, default: "'none'" }\n${GUARDS}`,
    old: (i) => ({ columns: { legacy_code: `L${i}`, note: `old ${i}` }, reads: { legacy_code: `L${i}`, note: `old ${i}` } }),
    new: (i) => ({ columns: { note: `new ${i}` }, reads: { note: `new ${i}` } }),
  },
  constrain: {
    // Old code leaves email out (NULL): from dual-write the trigger fixes it, run by the DML-only role, else its writes would fail.
    ddl: (t) => `CREATE TABLE ${t} (id bigserial PRIMARY KEY, email text, note text)`,
    yaml: (s) =>
      `plan: roles-constrain\ntable: ${s}.people\nconstrain: { column: email, not_null: true, check: "email like '%@%'", fix: "coalesce(email, 'unknown') || '@invalid'" }\n${GUARDS}`,
    old: (i) => ({ columns: { note: `old ${i}` }, reads: { note: `old ${i}` } }),
    new: (i) => ({ columns: { email: `new${i}@example.com`, note: `new ${i}` }, reads: { email: `new${i}@example.com`, note: `new ${i}` } }),
  },
  add: {
    // Old code never names country_code: the trigger fills it from the row; new code writes it.
    ddl: (t) => `CREATE TABLE ${t} (id bigserial PRIMARY KEY, country text NOT NULL DEFAULT 'FR', note text)`,
    yaml: (s) =>
      `plan: roles-add\ntable: ${s}.people\nadd: { column: country_code, type: text, not_null: true, value: "lower(country)", default: "'xx'" }\n${GUARDS}`,
    old: (i) => ({ columns: { note: `old ${i}` }, reads: { note: `old ${i}`, country_code: 'fr' } }),
    new: (i) => ({ columns: { note: `new ${i}`, country_code: 'fr' }, reads: { note: `new ${i}`, country_code: 'fr' } }),
  },
  index: {
    // A partial index replacing a plain one of the same name: built under a temporary name, swapped at contract.
    ddl: (t) =>
      `CREATE TABLE ${t} (id bigserial PRIMARY KEY, email text NOT NULL DEFAULT 'x', note text); CREATE INDEX people_email_idx ON ${t} (lower(email))`,
    yaml: (s) =>
      `plan: roles-index\ntable: ${s}.people\nindex: { name: people_email_idx, expression: "lower(email)", where: "note IS NOT NULL", replaces: people_email_idx }\n${GUARDS}`,
    old: (i) => ({ columns: { email: `Old${i}@x`, note: `old ${i}` }, reads: { email: `Old${i}@x`, note: `old ${i}` } }),
    new: (i) => ({ columns: { email: `New${i}@x`, note: `new ${i}` }, reads: { email: `New${i}@x`, note: `new ${i}` } }),
  },
  'rename-table': {
    // Old code uses the view under the old name from switch-read until contract drops it; new code the renamed table.
    ddl: (t) => `CREATE TABLE ${t} (id bigserial PRIMARY KEY, full_name text NOT NULL DEFAULT 'anonymous', note text)`,
    yaml: (s) => `plan: roles-rename-table\ntable: ${s}.people\nrename-table: { to: persons }\n${GUARDS}`,
    old: (i) => ({ columns: { full_name: `Old ${i}`, note: `old ${i}` }, reads: { full_name: `Old ${i}`, note: `old ${i}` } }),
    new: (i) => ({ columns: { note: `new ${i}` }, reads: { note: `new ${i}` } }),
    tables: { old: 'people', new: 'persons' },
  },
};

/** Which code versions may run once `phase` is applied (design §2). */
function versionsAt(phase: Phase | null): { old: boolean; new: boolean } {
  const i = phaseIndex(phase);
  return { old: i <= phaseIndex('switch-read'), new: i >= phaseIndex('switch-read') };
}

describe.each(CHANGE_KINDS)('%s with an owner runner, a DML-only application role and a read-only role', (kindName) => {
  const kind = KINDS[kindName];
  const schema = `roles_${kindName.replaceAll('-', '_')}`;
  const table = `${schema}.people`;
  const planName = `roles-${kindName}`;
  const relation = (version: 'old' | 'new'): string => `${schema}.${kind.tables?.[version] ?? 'people'}`;
  let n = 0;

  /** The application writes as each code version allowed at `at` would; the reader reads the phase. */
  async function traffic(at: Phase | null, step: string): Promise<void> {
    const allowed = versionsAt(at);
    const ids = (await db.sql<{ id: string }>(`SELECT id FROM ${relation(allowed.old ? 'old' : 'new')} ORDER BY id LIMIT 20`)).map((r) => r.id);
    for (const version of ['old', 'new'] as const) {
      if (!allowed[version]) continue;
      for (const verb of ['insert', 'update'] as const) {
        const w = kind[version](++n);
        const rel = relation(version);
        const cols = Object.keys(w.columns);
        const values = Object.values(w.columns);
        const { rows } =
          verb === 'insert'
            ? await app.query<{ id: string }>(
                `INSERT INTO ${rel} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING id`,
                values,
              )
            : await app.query<{ id: string }>(`UPDATE ${rel} SET ${cols.map((c, i) => `${c} = $${i + 2}`).join(', ')} WHERE id = $1 RETURNING id`, [
                ids[n % ids.length],
                ...values,
              ]);
        // Before dual-write only the old side exists or is kept, after contract only the new side; in between both must read back.
        const i = phaseIndex(at);
        const side =
          i < phaseIndex('dual-write') ? Object.keys(kind.old(0).columns) : at === 'contract' ? Object.keys(kind.new(0).columns) : Object.keys(w.reads);
        const expected = Object.fromEntries(side.map((c) => [c, w.reads[c]]));
        const [row] = await db.sql<Record<string, unknown>>(
          `SELECT ${Object.keys(expected)
            .map((c) => `${c}::text AS ${c}`)
            .join(', ')} FROM ${rel} WHERE id = $1`,
          [rows[0]!.id],
        );
        expect(row, `${step}: ${version} code ${verb}`).toEqual(expected);
      }
    }
    const { rows } = await reader.query<{ phase: string | null }>(`SELECT pgshift.phase($1) AS phase`, [planName]);
    expect(rows[0]!.phase, step).toBe(at);
  }

  it('writes and reads without an error at every phase, forward and back from each', async () => {
    await db.sql(`CREATE SCHEMA ${schema}; GRANT USAGE, CREATE ON SCHEMA ${schema} TO ${roles.runner}; GRANT USAGE ON SCHEMA ${schema} TO ${roles.app}`);
    const runner = await login(roles.runner);
    await runner.query(kind.ddl(table));
    const seed = kind.old(0).columns;
    await runner.query(
      `INSERT INTO ${table} (${Object.keys(seed).join(', ')}) SELECT ${Object.values(seed)
        .map((v) => `'${v}'`)
        .join(', ')} FROM generate_series(1, 100)`,
    );
    // The application's role: DML on the table and its sequence, nothing else.
    await runner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO ${roles.app}; GRANT USAGE ON SEQUENCE ${schema}.people_id_seq TO ${roles.app}`);
    await runner.end();
    const dir = await planDir({ [`${planName}.yaml`]: kind.yaml(schema) });
    const cli = (verb: 'apply' | 'rollback', phase: string): Promise<Awaited<ReturnType<typeof runCli>>> =>
      runCli(['plan', verb, planName, '--dir', dir, '--phase', phase, '--database-url', runnerUrl]);

    // Before pgshift ever ran, the reader reads nothing yet; after the first phase, the phase.
    // contract too: it archives the old columns, and its rollback brings them back with every value.
    const phases: Phase[] = ['expand', 'dual-write', 'backfill', 'switch-read', 'stop-write', 'contract'];
    for (const phase of phases) {
      const forward = await cli('apply', phase);
      expect(forward.errors, `apply ${phase}`).toBe('');
      expect(forward.code, `apply ${phase}`).toBe(0);
      await traffic(phase, `at ${phase}`);
      // Back from this phase, traffic, and forward again.
      const back = await cli('rollback', phase);
      expect(back.errors, `rollback ${phase}`).toBe('');
      expect(back.code, `rollback ${phase}`).toBe(0);
      const below = phases[phases.indexOf(phase) - 1] ?? null;
      await traffic(below, `after rolling back ${phase}`);
      const again = await cli('apply', phase);
      expect(again.code, `apply ${phase} again`).toBe(0);
    }
    await traffic('contract', 'at contract, again');
    // Eighteen CLI runs per kind, each a process of its own: on a loaded two-core machine that passes the default two minutes.
  }, 300_000);
});
