import { beforeAll, describe, expect, it } from 'vitest';
import { apply, purge, rollback, status, verify } from '../../src/index.js';
import { PHASES, phaseIndex, type Phase } from '../../src/phases/phases.js';
import { describeTable } from '../helpers/catalog.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, splitPlanYaml } from '../helpers/fixtures.js';

/**
 * Every change kind through all six phases with writes from the code versions
 * that may run at each phase, and back from every phase to nothing: no write
 * is lost, every row ends consistent, the table definition is restored.
 * Back from contract too: new code's rows written after it get their old
 * columns from `reverse`.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

/** What a change kind looks like to the application: how each code version writes, and what each side must read back. */
interface Kind {
  readonly yaml: (schema: string) => string;
  readonly oldColumns: readonly string[];
  readonly newColumns: readonly string[];
  /** An old-code value and what the new side must then hold, and the same for new code. */
  readonly oldValue: (i: number) => { old: Record<string, string | null>; new: Record<string, string | null> };
  readonly newValue: (i: number) => { old: Record<string, string | null>; new: Record<string, string | null> };
  /** What an old-code insert that omits the old columns gets. */
  readonly defaulted: { old: Record<string, string | null>; new: Record<string, string | null> };
}

const BACKFILL = '{ batch_size: 300, pause: 0ms }';
const GUARDS = '{ lock_timeout: 1s, statement_timeout: 20s, retries: 2 }';

const KINDS: Record<string, Kind> = {
  split: {
    yaml: (schema) => splitPlanYaml(`split-${schema.replaceAll('_', '-')}`, `${schema}.users`, BACKFILL, GUARDS),
    oldColumns: ['full_name'],
    newColumns: ['first_name', 'last_name'],
    oldValue: (i) => ({ old: { full_name: `Old${i} Writer${i}` }, new: { first_name: `Old${i}`, last_name: `Writer${i}` } }),
    newValue: (i) => ({ old: { full_name: `New${i} Writer${i}` }, new: { first_name: `New${i}`, last_name: `Writer${i}` } }),
    defaulted: { old: { full_name: 'anonymous' }, new: { first_name: 'anonymous', last_name: null } },
  },
  rename: {
    yaml: (schema) => `
plan: rename-${schema.replaceAll('_', '-')}
table: ${schema}.users
rename: { column: full_name, to: display_name }
backfill: ${BACKFILL}
guards: ${GUARDS}`,
    oldColumns: ['full_name'],
    newColumns: ['display_name'],
    oldValue: (i) => ({ old: { full_name: `Old ${i}` }, new: { display_name: `Old ${i}` } }),
    newValue: (i) => ({ old: { full_name: `New ${i}` }, new: { display_name: `New ${i}` } }),
    defaulted: { old: { full_name: 'anonymous' }, new: { display_name: 'anonymous' } },
  },
};

/** Which code versions may run once `phase` is applied (design §2). */
function versionsAt(phase: Phase | null): { old: boolean; new: boolean } {
  const i = phaseIndex(phase);
  return { old: i <= phaseIndex('switch-read'), new: i >= phaseIndex('switch-read') };
}

/** The ledger: for each row id, what its two sides must read back. */
type Ledger = Map<number, { old: Record<string, string | null>; new: Record<string, string | null> }>;

class Scenario {
  readonly ledger: Ledger = new Map();
  private n = 0;
  constructor(
    readonly kind: Kind,
    readonly schema: string,
  ) {}

  get table(): string {
    return `${this.schema}.users`;
  }

  async create(rows: number): Promise<void> {
    await db.sql(`CREATE SCHEMA ${this.schema}`);
    await db.sql(`CREATE TABLE ${this.table} (id bigserial PRIMARY KEY, full_name text NOT NULL DEFAULT 'anonymous', note text)`);
    for (let i = 1; i <= rows; i++) {
      const v = this.kind.oldValue(-i);
      await db.sql(`INSERT INTO ${this.table} (full_name) VALUES ($1)`, [v.old.full_name]);
      this.ledger.set(i, v);
    }
  }

  /** Writes the code versions allowed at `phase` would make: inserts, updates by key, an insert relying on defaults. */
  async write(phase: Phase | null): Promise<void> {
    const allowed = versionsAt(phase);
    const ids = [...this.ledger.keys()];
    if (allowed.old) {
      const v = this.kind.oldValue(++this.n);
      const cols = Object.keys(v.old);
      const [row] = await db.sql<{ id: string }>(
        `INSERT INTO ${this.table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING id`,
        Object.values(v.old),
      );
      this.ledger.set(Number(row!.id), v);
      const u = this.kind.oldValue(++this.n);
      const target = ids[this.n % ids.length]!;
      await db.sql(`UPDATE ${this.table} SET ${cols.map((c, i) => `${c} = $${i + 2}`).join(', ')} WHERE id = $1`, [target, ...Object.values(u.old)]);
      this.ledger.set(target, u);
      const [d] = await db.sql<{ id: string }>(`INSERT INTO ${this.table} (note) VALUES ('defaults') RETURNING id`);
      this.ledger.set(Number(d!.id), this.kind.defaulted);
      // An update that touches neither side must leave both alone.
      await db.sql(`UPDATE ${this.table} SET note = 'touched' WHERE id = $1`, [ids[(this.n * 7) % ids.length]]);
    }
    if (allowed.new) {
      const v = this.kind.newValue(++this.n);
      const cols = Object.keys(v.new);
      const [row] = await db.sql<{ id: string }>(
        `INSERT INTO ${this.table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING id`,
        Object.values(v.new),
      );
      this.ledger.set(Number(row!.id), v);
      const u = this.kind.newValue(++this.n);
      const target = ids[(this.n * 3) % ids.length]!;
      await db.sql(`UPDATE ${this.table} SET ${cols.map((c, i) => `${c} = $${i + 2}`).join(', ')} WHERE id = $1`, [target, ...Object.values(u.new)]);
      this.ledger.set(target, u);
    }
  }

  /** Every row reads back, on `side`, what the ledger says. */
  async expectSide(side: 'old' | 'new'): Promise<void> {
    const cols = side === 'old' ? this.kind.oldColumns : this.kind.newColumns;
    const rows = await db.sql<Record<string, string | null>>(`SELECT id, ${cols.join(', ')} FROM ${this.table} ORDER BY id`);
    const actual = Object.fromEntries(rows.map((r) => [Number(r.id), Object.fromEntries(cols.map((c) => [c, r[c]]))]));
    const expected = Object.fromEntries([...this.ledger].map(([id, v]) => [id, v[side]]));
    expect(actual).toEqual(expected);
  }
}

describe.each(Object.keys(KINDS))('%s', (kindName) => {
  const kind = KINDS[kindName]!;

  it('goes forward through all six phases with old and new code writing, losing nothing', async () => {
    const s = new Scenario(kind, `${kindName}_fwd`);
    await s.create(1000);
    const p = plan(kind.yaml(s.schema));
    const options = { databaseUrl: db.url };
    for (const phase of PHASES) {
      const [outcome] = await apply([p], 'next', options);
      expect(outcome!.error, phase).toBeUndefined();
      expect(outcome!.to).toBe(phase);
      await s.write(phase);
      if (phaseIndex(phase) <= phaseIndex('stop-write')) await s.expectSide('old');
      if (phaseIndex(phase) >= phaseIndex('backfill')) await s.expectSide('new');
      if (phaseIndex(phase) >= phaseIndex('backfill') && phase !== 'contract') expect((await verify(p, options)).differing).toBe(0);
    }
    const [st] = await status([p], options);
    expect(st).toMatchObject({ phase: 'contract', status: 'complete', next: null });
    // contract archived the old columns under names no code uses; purge drops them.
    const archived = kind.oldColumns.map((c) => `_pgshift_${p.name}_${c}`);
    expect(st!.archive).toMatchObject({ columns: kind.oldColumns.map((c, i) => ({ column: c, archive: archived[i] })), purgedAt: null });
    const names = async (): Promise<string[]> => (await describeTable(db, s.table)).columns!.map((c) => (c as { name: string }).name);
    expect(await names()).toEqual(['id', ...archived, 'note', ...kind.newColumns]);
    expect((await purge(p, options)).purged.map((c) => c.archive)).toEqual(archived);
    expect(await names()).toEqual(['id', 'note', ...kind.newColumns]);
    // Nothing of pgshift's is left on the table.
    expect((await describeTable(db, s.table)).triggers).toEqual([]);
  });

  it.each(PHASES)('rolls back from %s to nothing, losing no write and restoring the table', async (top) => {
    const s = new Scenario(kind, `${kindName}_back_${top.replace('-', '_')}`);
    await s.create(500);
    const before = await describeTable(db, s.table);
    const p = plan(kind.yaml(s.schema));
    const options = { databaseUrl: db.url };
    const [outcome] = await apply([p], top, options);
    expect(outcome!.error).toBeUndefined();
    await s.write(top);
    for (let at: Phase | null = top; at !== null;) {
      const back = await rollback(p, 'current', options);
      expect(back.error, `rollback of ${at}`).toBeUndefined();
      at = back.to;
      await s.write(at);
      if (phaseIndex(at) >= phaseIndex('backfill')) await s.expectSide('new');
    }
    await s.expectSide('old');
    expect(await describeTable(db, s.table)).toEqual(before);
    const [st] = await status([p], options);
    expect(st).toMatchObject({ phase: null, status: 'rolled_back', next: 'expand' });
    // And the plan can start again from scratch after a full rollback.
    const [again] = await apply([p], 'backfill', options);
    expect(again!.error).toBeUndefined();
    await s.expectSide('new');
  });
});
