import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir } from '../helpers/fixtures.js';

/** The `drop` kind beyond the lifecycle table (test/db/roles.test.ts): what lint refuses, and what contract does. */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db.client.end().catch(() => undefined);
});

const cli = (dir: string, ...args: string[]) => runCli(['plan', ...args, '--dir', dir, '--database-url', db.url, '--json']);

describe('drop', () => {
  it('is refused up front for a NOT NULL column without a default, and for a column a view reads, changing nothing', async () => {
    await db.sql(`CREATE TABLE parcels (id bigserial PRIMARY KEY, code text NOT NULL, note text); CREATE VIEW parcel_codes AS SELECT id, code FROM parcels`);
    const dir = await planDir({ 'drop-parcels-code.yaml': 'table: parcels\ndrop: { column: code }\n' });
    for (const verb of ['lint', 'apply']) {
      const result = await cli(dir, verb);
      expect(result.code, verb).toBe(2);
      expect(result.errors).toMatch(
        /drop-parcels-code\.yaml(:\d+)? drop\.default: column "code" is NOT NULL without a default, so new code's inserts, which leave it out, would fail from switch-read/,
      );
      expect(result.errors).toMatch(/view public\.parcel_codes reads "code", and DROP COLUMN would fail on it/);
    }
    expect(await db.sql(`SELECT count(*)::int AS n FROM pgshift.plans`).catch(() => [{ n: 0 }])).toEqual([{ n: 0 }]);
  });

  it("gives new code's inserts the default from expand, drops the index concurrently and archives the column in contract; back, and purged", async () => {
    await db.sql(`CREATE TABLE tickets (id bigserial PRIMARY KEY, legacy text NOT NULL, note text); CREATE INDEX tickets_legacy_idx ON tickets (legacy)`);
    await db.sql(`INSERT INTO tickets (legacy, note) SELECT 'L' || g, 'n' FROM generate_series(1, 50) g`);
    const dir = await planDir({ 'drop-tickets-legacy.yaml': `table: tickets\ndrop: { column: legacy, default: "'gone'" }\n` });
    const shown = await cli(dir, 'show', 'drop-tickets-legacy', '--phase', 'contract');
    const contract = shown.lines[0] as { apply: { kind: string; statements?: string[]; columns?: string[] }[] };
    expect(contract.apply.map((s) => [s.kind, s.statements ?? s.columns])).toEqual([
      ['drop-indexes', ['legacy']],
      ['sql', ['ALTER TABLE "public"."tickets" RENAME COLUMN "legacy" TO "_pgshift_drop-tickets-legacy_legacy"']],
      ['record-archive', [{ column: 'legacy', archive: '_pgshift_drop-tickets-legacy_legacy' }]],
    ]);
    expect((shown.lines[0] as { purge: { statements: string[] }[] }).purge.map((s) => s.statements)).toEqual([
      ['ALTER TABLE "public"."tickets" DROP COLUMN IF EXISTS "_pgshift_drop-tickets-legacy_legacy"'],
    ]);

    expect((await cli(dir, 'apply', '--phase', 'switch-read')).code).toBe(0);
    // New code leaves the column out.
    await db.sql(`INSERT INTO tickets (note) VALUES ('new code')`);
    expect(await db.sql(`SELECT legacy FROM tickets WHERE note = 'new code'`)).toEqual([{ legacy: 'gone' }]);
    const back = await cli(dir, 'rollback', 'drop-tickets-legacy', '--phase', 'expand');
    expect(back.errors).toBe('');
    expect(await db.sql(`SELECT pg_get_expr(adbin, adrelid) AS d FROM pg_attrdef WHERE adrelid = 'tickets'::regclass`)).toEqual([
      { d: "nextval('tickets_id_seq'::regclass)" },
    ]);

    const columns = async (): Promise<string[]> =>
      (
        await db.sql<{ attname: string }>(
          `SELECT attname FROM pg_attribute WHERE attrelid = 'tickets'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        )
      ).map((r) => r.attname);
    const legacy = async (): Promise<unknown[]> => db.sql(`SELECT id::int, legacy FROM tickets ORDER BY id`);
    const applied = await cli(dir, 'apply', '--phase', 'contract');
    expect(applied.errors).toBe('');
    expect(applied.code).toBe(0);
    expect(await columns()).toEqual(['id', '_pgshift_drop-tickets-legacy_legacy', 'note']);
    expect(await db.sql(`SELECT to_regclass('tickets_legacy_idx') AS i`)).toEqual([{ i: null }]);
    // New code writes after contract: its inserts leave the archived column to its default, as before contract.
    await db.sql(`INSERT INTO tickets (note) VALUES ('after contract')`);
    await db.sql(`UPDATE tickets SET note = 'updated after contract' WHERE id = 3`);

    // Back to stop-write: the column has its name again, with every value written before contract, and its index.
    const back2 = await cli(dir, 'rollback', 'drop-tickets-legacy', '--phase', 'contract');
    expect(back2.errors).toBe('');
    expect(back2.code).toBe(0);
    expect(await columns()).toEqual(['id', 'legacy', 'note']);
    expect(await legacy()).toEqual([
      ...Array.from({ length: 50 }, (_, i) => ({ id: i + 1, legacy: `L${i + 1}` })),
      { id: 51, legacy: 'gone' },
      { id: 52, legacy: 'gone' },
    ]);
    expect(await db.sql(`SELECT indexdef FROM pg_indexes WHERE indexname = 'tickets_legacy_idx'`)).toEqual([
      { indexdef: 'CREATE INDEX tickets_legacy_idx ON public.tickets USING btree (legacy)' },
    ]);
    expect((await cli(dir, 'status', 'drop-tickets-legacy')).lines[0]).toEqual([expect.objectContaining({ phase: 'stop-write', archive: null })]);

    // Forward again, then purged: the column is gone, and contract can no longer be rolled back.
    expect((await cli(dir, 'apply', '--phase', 'contract')).code).toBe(0);
    const purged = await cli(dir, 'purge', 'drop-tickets-legacy');
    expect(purged.errors).toBe('');
    expect(purged.lines).toEqual([
      expect.objectContaining({ event: 'purge', plan: 'drop-tickets-legacy', purged: [{ column: 'legacy', archive: '_pgshift_drop-tickets-legacy_legacy' }] }),
    ]);
    expect(await columns()).toEqual(['id', 'note']);
    const refused = await cli(dir, 'rollback', 'drop-tickets-legacy', '--phase', 'contract');
    expect(refused.code).toBe(2);
    expect(refused.errors).toMatch(
      /the old columns contract archived \(_pgshift_drop-tickets-legacy_legacy\) were dropped .* so contract cannot be rolled back/,
    );
  });
});
