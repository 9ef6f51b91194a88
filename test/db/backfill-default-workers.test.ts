import { beforeAll, describe, expect, it } from 'vitest';
import { apply, verify } from '../../src/index.js';
import { capturingLogger, inconsistentRows, splitPlanYaml } from '../helpers/backfill.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/**
 * A plan without `backfill.workers` walks with as many workers as the
 * server's facts give at its start (the rule itself: test/unit/default-workers.test.ts),
 * says so, and cuts the table into that many ranges.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

const GUARDS = '{ lock_timeout: 1s, statement_timeout: 10s, retries: 3 }';

describe('backfill.workers left unset', () => {
  it('is decided from the server, logged with its reasons, and walked as that many ranges', async () => {
    await db.sql(`CREATE TABLE big (id bigserial PRIMARY KEY, full_name text)`);
    await db.sql(`INSERT INTO big (full_name) SELECT 'First' || g || ' Last' || g FROM generate_series(1, 200000) g`);
    await db.sql(`ANALYZE big`);
    const p = plan(splitPlanYaml('split-big', 'public.big', '{ pause: 0ms }', GUARDS));
    expect(p.backfill.workers).toBeNull();
    expect((await apply([p], 'dual-write', { databaseUrl: db.url }))[0]!.error).toBeUndefined();
    const { log, messages } = capturingLogger();
    const [outcome] = await apply([p], 'backfill', { databaseUrl: db.url, log });
    expect(outcome!.error).toBeUndefined();
    const said = messages().find((m) => m.startsWith('backfill.workers not set: '));
    expect(said).toMatch(/^backfill\.workers not set: \d workers? \(max_parallel_workers \d+ .* ~200000 rows \(2 workers' worth\), at most 4\)$/);
    const workers = Number(/not set: (\d)/.exec(said!)![1]);
    const ranges = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.backfill_ranges WHERE plan = 'split-big'`);
    // One worker walks the table as one runner, without ranges.
    expect(ranges[0]!.n).toBe(workers > 1 ? workers : 0);
    expect(await inconsistentRows(db, 'big')).toBe(0);
    expect((await verify(p, { databaseUrl: db.url })).differing).toBe(0);
  });
});
