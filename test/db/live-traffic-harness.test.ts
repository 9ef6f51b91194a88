import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { createUsers, SEED_COLUMNS } from '../../examples/app/schema.js';
import { SPLIT_APP } from '../../examples/app/split.js';
import { checkWrites } from '../../examples/load/checker.js';
import { LockWaitSampler } from '../../examples/load/lock-waits.js';
import { APP_NAME, type WriteRecord } from '../../examples/load/workload.js';
import { apply, loadPlans, type Plan } from '../../src/index.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * The live-traffic harness must be able to fail: the checker finds rows lost
 * or changed behind the app's back, and the sampler sees a client queued on a
 * lock. Without these, "0 lost, 0 waits" would prove nothing.
 */

let db: TestDatabase;
let plan: Plan;
beforeAll(async () => {
  db = await freshDatabase();
  [plan] = (await loadPlans('plans', [SPLIT_APP.plan])) as [Plan];
});

describe('checker', () => {
  it('finds a lost row and wrong values, through the plan expressions and in columns outside the plan', async () => {
    await createUsers(db.client, 20);
    const v1 = SPLIT_APP.versions.v1();
    const writes: WriteRecord[] = [];
    const write = async (id: string | null, n: number): Promise<string> => {
      const row = v1.values(n);
      const written = id ?? (await v1.insert(db.client, row));
      if (id) expect(await v1.update(db.client, id, row)).toBe(true);
      writes.push({ id: written, side: 'old', row, window: 'expand', version: 'v1', shared: false });
      return written;
    };
    const kept = await write(null, 1);
    const lost = await write(null, 2);
    await write('5', 3);
    const [outcome] = await apply([plan], 'contract', { databaseUrl: db.url });
    expect(outcome!.error).toBeUndefined();

    const clean = await checkWrites(db.client, plan, writes, { rows: 20, columns: SEED_COLUMNS });
    expect(clean).toMatchObject({ rows: 22, sides: ['new'], failed: 0, findings: [] });

    await db.sql(`DELETE FROM users WHERE id = $1`, [lost]);
    await db.sql(`UPDATE users SET last_name = 'Tampered' WHERE id = 5`);
    await db.sql(`UPDATE users SET email = 'tampered@example.com' WHERE id = 7`);
    const result = await checkWrites(db.client, plan, writes, { rows: 20, columns: SEED_COLUMNS });
    expect(result.failed).toBe(3);
    expect(result.failedByWindow).toEqual({ expand: 2, seed: 1 });
    expect(result.findings.map((f) => [f.id, f.kind])).toEqual(
      [
        ['5', 'wrong'],
        ['7', 'wrong'],
        [lost, 'lost'],
      ].sort((a, b) => Number(a[0]) - Number(b[0])),
    );
    // What the split's `using` makes of v1's full_name "Ada3 Lovelace3".
    expect(result.findings.find((f) => f.id === '5')!.expected).toMatchObject({ first_name: 'Ada3', last_name: 'Lovelace3' });
    expect(result.findings.find((f) => f.id === '7')!.expected).toMatchObject({ first_name: 'First7', last_name: 'Last7', email: 'u7@example.com' });
    expect(kept).not.toBe(lost);
  });
});

describe('checker, hot rows', () => {
  it('accepts any one of the writes of a row several clients wrote, never a mix of two', async () => {
    // The plan's state from the test above stays; the recreated table has the old side only, which is checked.
    await createUsers(db.client, 10);
    const v1 = SPLIT_APP.versions.v1();
    const writes: WriteRecord[] = [];
    for (const n of [1, 2]) {
      const row = v1.values(n);
      expect(await v1.update(db.client, '3', row)).toBe(true);
      writes.push({ id: '3', side: 'old', row, window: 'switch-read', version: 'v1', shared: true });
    }
    const check = (): ReturnType<typeof checkWrites> => checkWrites(db.client, plan, writes, { rows: 10, columns: SEED_COLUMNS });
    expect(await check()).toMatchObject({ sides: ['old'], sharedRows: 1, failed: 0 });
    await db.sql(`UPDATE users SET email = $1 WHERE id = 3`, [writes[0]!.row.email]);
    expect((await check()).findings).toMatchObject([{ id: '3', kind: 'wrong', candidates: 2 }]);
    await db.sql(`UPDATE users SET full_name = $1 WHERE id = 3`, [writes[0]!.row.full_name]);
    expect(await check()).toMatchObject({ failed: 0 });
  });
});

describe('lock-wait sampler', () => {
  it('sees an app query queued behind a lock, and who holds it', async () => {
    await createUsers(db.client, 10);
    const holder = await db.connect();
    const app = new pg.Client({ connectionString: db.url, application_name: APP_NAME });
    await app.connect();
    const sampler = new LockWaitSampler(db.url, APP_NAME);
    await sampler.start();
    try {
      await holder.query(`SET application_name = 'lock holder'`);
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
      const queued = app.query('SELECT count(*) FROM users');
      // Held well past the sampler's period; only a lower bound is asserted, which load can only raise.
      await sleep(800);
      await holder.query('COMMIT');
      await queued;
    } finally {
      await sampler.stop();
      await app.end();
      await holder.end();
    }
    const wait = sampler.longest.get('start');
    expect(wait?.ms).toBeGreaterThan(100);
    expect(wait?.lock).toContain('AccessShareLock on users');
    expect(wait?.blockedBy).toContain('lock holder');
  });
});
