import { beforeAll, describe, expect, it } from 'vitest';
import { apply, rollback } from '../../src/index.js';
import type { Phase } from '../../src/phases/phases.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/**
 * A cross-partition UPDATE is run by PostgreSQL as a DELETE on the source
 * partition and an INSERT on the destination: the trigger's UPDATE branch
 * fires on the source, then its INSERT branch on the destination with both
 * sides set. The moved row must read back exactly as the same UPDATE leaves a
 * row that stays in its partition, in every phase that has the trigger,
 * forward and back, for old code and new code.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

interface Kind {
  readonly yaml: (table: string) => string;
  readonly oldCols: readonly string[];
  readonly newCols: readonly string[];
  /** A new-code write of the new side (the lossy direction for split), and an old-code write of the old side. */
  readonly newWrite: (i: number) => Record<string, string>;
  readonly oldWrite: (i: number) => Record<string, string>;
}

const GUARDS = 'guards: { lock_timeout: 1s, statement_timeout: 20s, retries: 2 }\nbackfill: { batch_size: 50, pause: 0ms }';

const KINDS: Record<string, Kind> = {
  split: {
    yaml: (t) =>
      `plan: ${t.replaceAll('_', '-')}\ntable: public.${t}\nsplit:\n  column: full_name\n  into:\n    - { name: first_name, type: text, using: "split_part(full_name, ' ', 1)" }\n    - { name: last_name, type: text, using: "nullif(substr(full_name, strpos(full_name, ' ') + 1), full_name)" }\n  reverse: "concat_ws(' ', first_name, last_name)"\n${GUARDS}\n`,
    oldCols: ['full_name'],
    newCols: ['first_name', 'last_name'],
    // Two words in first_name: derived forward from full_name they would split differently.
    newWrite: (i) => ({ first_name: `Anna Lena${i}`, last_name: 'Berg' }),
    oldWrite: (i) => ({ full_name: `Old${i} Writer` }),
  },
  rename: {
    yaml: (t) => `plan: ${t.replaceAll('_', '-')}\ntable: public.${t}\nrename: { column: full_name, to: display_name }\n${GUARDS}\n`,
    oldCols: ['full_name'],
    newCols: ['display_name'],
    newWrite: (i) => ({ display_name: `New ${i}` }),
    oldWrite: (i) => ({ full_name: `Old ${i}` }),
  },
};

/** The phases at which the trigger exists, and the sync mode each leaves it in. */
const TRIGGER_PHASES: readonly Phase[] = ['dual-write', 'backfill', 'switch-read', 'stop-write'];

describe.each(Object.keys(KINDS))('%s on a table with three partitions', (kindName) => {
  const kind = KINDS[kindName]!;
  const table = `moves_${kindName}`;
  const cols = [...kind.oldCols, ...kind.newCols];
  let n = 0;

  /** The same UPDATE on a row that moves and on one that stays: both must read back the same, and new code's write as written. */
  async function check(at: Phase): Promise<void> {
    for (const writer of ['new', 'old'] as const) {
      const values = writer === 'new' ? kind.newWrite(++n) : kind.oldWrite(++n);
      const names = Object.keys(values);
      const set = names.map((c, i) => `${c} = $${i + 1}`).join(', ');
      const moved = (n % 3) + 1;
      // Region r holds ids r*1000 …; row r*1000+1 moves to the next region, row r*1000+2 stays.
      const dest = (moved % 3) + 1;
      await db.sql(`UPDATE ${table} SET ${set}, region = ${dest} WHERE region = ${moved} AND id = ${moved * 1000 + 1}`, Object.values(values));
      await db.sql(`UPDATE ${table} SET ${set} WHERE id = ${moved * 1000 + 2}`, Object.values(values));
      const rows = await db.sql<Record<string, string | null>>(
        `SELECT id, tableoid::regclass::text AS part, ${cols.join(', ')} FROM ${table} WHERE id IN (${moved * 1000 + 1}, ${moved * 1000 + 2}) ORDER BY id`,
      );
      const [m, s] = rows;
      expect(m!.part, `${at}: the row moved`).toBe(`${table}_${dest}`);
      const pick = (r: Record<string, string | null>): Record<string, string | null> => Object.fromEntries(cols.map((c) => [c, r[c] ?? null]));
      expect(pick(m!), `${at}, ${writer} code: the moved row reads as the row that stayed`).toEqual(pick(s!));
      // What the writer wrote is kept where its side is written by that code at this phase.
      if (writer === 'new' || at !== 'stop-write') expect(pick(m!), `${at}, ${writer} code`).toMatchObject(values);
      // Move it back so every region keeps its two probe rows.
      await db.sql(`UPDATE ${table} SET region = ${moved} WHERE id = ${moved * 1000 + 1}`);
      expect(pick((await db.sql<Record<string, string | null>>(`SELECT ${cols.join(', ')} FROM ${table} WHERE id = ${moved * 1000 + 1}`))[0]!)).toEqual(
        pick(m!),
      );
    }
  }

  it('keeps what the writer wrote when an UPDATE moves the row, in every phase with the trigger, forward and back', async () => {
    await db.sql(`CREATE TABLE ${table} (id int NOT NULL, region int NOT NULL, full_name text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`);
    for (const r of [1, 2, 3]) {
      await db.sql(`CREATE TABLE ${table}_${r} PARTITION OF ${table} FOR VALUES IN (${r})`);
      await db.sql(`INSERT INTO ${table} (id, region, full_name) SELECT ${r * 1000} + g, ${r}, 'Seed' || g || ' Row' FROM generate_series(1, 20) g`);
    }
    const p = plan(kind.yaml(table));
    const options = { databaseUrl: db.url };
    for (const phase of TRIGGER_PHASES) {
      const [outcome] = await apply([p], phase, options);
      expect(outcome!.error, phase).toBeUndefined();
      await check(phase);
    }
    for (const phase of ['stop-write', 'switch-read', 'backfill'] as const) {
      const back = await rollback(p, phase, options);
      expect(back.error, `rollback of ${phase}`).toBeUndefined();
      await check(back.to!);
    }
  });
});
