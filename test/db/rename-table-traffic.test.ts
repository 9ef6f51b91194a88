import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/backfill.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir } from '../helpers/fixtures.js';

/**
 * A rename-table under traffic: old-code clients insert, update and read
 * through the old name without pause while switch-read renames the table
 * under them (and while its rollback renames it back), new-code clients
 * on the new name from switch-read on. No client query fails, and every
 * acknowledged write is in the table, as its last write left it.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.client.end().catch(() => undefined);
});

/** One client writing and reading through one name in a loop until stopped. */
class Client {
  readonly errors: string[] = [];
  /** Every row this client inserted or updated, with the note its last acknowledged write gave it. */
  readonly written = new Map<string, string>();
  rounds = 0;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private readonly client: pg.Client;

  constructor(
    url: string,
    readonly name: string,
    readonly table: string,
  ) {
    this.client = new pg.Client({ connectionString: url });
    this.client.on('error', () => undefined);
  }

  async start(): Promise<void> {
    await this.client.connect();
    this.loop = (async () => {
      while (!this.stopped) {
        const note = `${this.name}-${this.rounds}`;
        try {
          const { rows } = await this.client.query<{ id: string }>(`INSERT INTO ${this.table} (name, note) VALUES ($1, $1) RETURNING id`, [note]);
          this.written.set(rows[0]!.id, note);
          // A prepared statement, planned before the rename and run after it.
          const update = await this.client.query({
            name: `upd-${this.table}`,
            text: `UPDATE ${this.table} SET note = $2 WHERE id = $1`,
            values: [rows[0]!.id, `${note}u`],
          });
          if (update.rowCount === 1) this.written.set(rows[0]!.id, `${note}u`);
          await this.client.query(`SELECT count(*) FROM ${this.table} WHERE id > $1`, [rows[0]!.id]);
        } catch (error) {
          this.errors.push(`${this.name} round ${this.rounds}: ${(error as Error).message}`);
        }
        this.rounds++;
      }
    })();
  }

  /** Resolve once this client has made `n` more rounds. */
  async moreRounds(n: number): Promise<void> {
    const target = this.rounds + n;
    await waitFor(`${this.name} to make ${n} more rounds`, async () => this.rounds >= target, 60_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.client.end();
  }
}

describe('rename-table under traffic', () => {
  it('old code on the old name and new code on the new one see no error through switch-read, its rollback, and on to contract', async () => {
    await db.sql(`CREATE TABLE parts (id bigserial PRIMARY KEY, name text NOT NULL, note text)`);
    await db.sql(`INSERT INTO parts (name, note) SELECT 'seed ' || g, 'seed' FROM generate_series(1, 500) g`);
    const dir = await planDir({ 'rename-table-parts.yaml': 'table: parts\nrename-table: { to: components }\nguards: { lock_timeout: 200ms }\n' });
    const cli = (...args: string[]) => runCli(['plan', ...args, 'rename-table-parts', '--dir', dir, '--database-url', db.url]);
    expect((await cli('apply', '--phase', 'backfill')).code).toBe(0);

    const old = [new Client(db.url, 'old1', 'parts'), new Client(db.url, 'old2', 'parts')];
    for (const c of old) await c.start();
    await Promise.all(old.map((c) => c.moreRounds(5)));
    const switched = await cli('apply', '--phase', 'switch-read');
    expect(switched.errors).toBe('');
    expect(switched.code).toBe(0);
    await Promise.all(old.map((c) => c.moreRounds(5)));

    // New code starts once switch-read is applied; both versions run side by side.
    let fresh = [new Client(db.url, 'new1', 'components')];
    for (const c of fresh) await c.start();
    await Promise.all([...old, ...fresh].map((c) => c.moreRounds(5)));

    // Rolling switch-read back means new code is rolled back first; old code keeps running through it.
    for (const c of fresh) await c.stop();
    const back = await cli('rollback');
    expect(back.errors).toBe('');
    expect(back.code).toBe(0);
    await Promise.all(old.map((c) => c.moreRounds(5)));
    expect(await cli('apply', '--phase', 'switch-read')).toMatchObject({ code: 0 });
    await Promise.all(old.map((c) => c.moreRounds(5)));
    const later = [new Client(db.url, 'new2', 'components')];
    for (const c of later) await c.start();
    await Promise.all([...old, ...later].map((c) => c.moreRounds(5)));

    // Old code is gone before stop-write; contract drops the view while new code writes.
    for (const c of old) await c.stop();
    const contract = await cli('apply', '--phase', 'contract');
    expect(contract.errors).toBe('');
    expect(contract.code).toBe(0);
    await Promise.all(later.map((c) => c.moreRounds(5)));
    for (const c of later) await c.stop();

    fresh = [...fresh, ...later];
    const all = [...old, ...fresh];
    expect(all.flatMap((c) => c.errors)).toEqual([]);
    const expected = new Map(all.flatMap((c) => [...c.written]));
    const rows = await db.sql<{ id: string; note: string }>(`SELECT id::text AS id, note FROM components WHERE id = ANY ($1::bigint[])`, [
      [...expected.keys()],
    ]);
    expect(rows.length).toBe(expected.size);
    for (const r of rows) expect(r.note, `row ${r.id}`).toBe(expected.get(r.id));
    expect(await db.sql(`SELECT count(*)::int AS n FROM components`)).toEqual([{ n: 500 + expected.size }]);
  });
});
