import { beforeAll, describe, expect, it } from 'vitest';
import { apply, rollback, status, verify } from '../../src/index.js';
import { PHASES, previousPhase, type Phase } from '../../src/phases/phases.js';
import { describeTable } from '../helpers/catalog.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan, SPLIT_YAML } from '../helpers/fixtures.js';

/**
 * A phase interrupted anywhere can be applied again or rolled back: every
 * step is idempotent, and a failed phase records where it stopped.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});

async function usersIn(schema: string, rows: number): Promise<void> {
  await db.sql(`CREATE SCHEMA ${schema}`);
  await db.sql(`CREATE TABLE ${schema}.users (id bigserial PRIMARY KEY, full_name text NOT NULL DEFAULT 'anonymous')`);
  await db.sql(`INSERT INTO ${schema}.users (full_name) SELECT 'A' || g || ' B' || g FROM generate_series(1, ${rows}) g`);
}

const splitIn = (schema: string) =>
  plan(SPLIT_YAML.replace('plan: split-users-full-name', `plan: split-${schema.replaceAll('_', '-')}`).replace('public.users', `${schema}.users`));

/**
 * Pretend the runner died after a phase's steps ran but before the state
 * moved: the phase stays marked unfinished, as recordPhase marks it before
 * its first step (without the mark, the objects would be drift).
 */
async function forgetPhase(name: string, phase: Phase | null, unfinished: { phase: Phase; action: 'apply' | 'rollback' }): Promise<void> {
  await db.sql(`UPDATE pgshift.plans SET phase = $2, status = 'in_progress', unfinished_phase = $3, unfinished_action = $4 WHERE name = $1`, [
    name,
    phase,
    unfinished.phase,
    unfinished.action,
  ]);
}

describe('idempotent phases', () => {
  it.each(PHASES)('re-running %s after it already ran, in either direction, succeeds and changes nothing more', async (phase) => {
    const schema = `idem_${phase.replace('-', '_')}`;
    await usersIn(schema, 700);
    const p = splitIn(schema);
    const options = { databaseUrl: db.url };
    expect((await apply([p], phase, options))[0]!.error).toBeUndefined();
    const applied = await describeTable(db, `${schema}.users`);

    await forgetPhase(p.name, previousPhase(phase), { phase, action: 'apply' });
    const again = await apply([p], 'next', options);
    expect(again[0]!.error).toBeUndefined();
    expect(again[0]!.to).toBe(phase);
    expect(await describeTable(db, `${schema}.users`)).toEqual(applied);

    const back = await rollback(p, 'current', options);
    expect(back.error).toBeUndefined();
    const rolledBack = await describeTable(db, `${schema}.users`);
    await forgetPhase(p.name, phase, { phase, action: 'rollback' });
    const backAgain = await rollback(p, 'current', options);
    expect(backAgain.error).toBeUndefined();
    expect(await describeTable(db, `${schema}.users`)).toEqual(rolledBack);
  });
});

describe('a phase that fails part-way', () => {
  it('can be rolled back, or applied again, from where it stopped', async () => {
    const schema = 'half';
    await usersIn(schema, 300);
    const p = splitIn(schema);
    const options = { databaseUrl: db.url, guards: { lockTimeoutMs: 200, retries: 0, maxWaitMs: 500 } };
    expect((await apply([p], 'expand', options))[0]!.error).toBeUndefined();
    const expanded = await describeTable(db, `${schema}.users`);

    // dual-write creates its functions, then cannot get the lock for the trigger.
    const blocker = await db.connect();
    await blocker.query('BEGIN');
    await blocker.query(`LOCK TABLE ${schema}.users IN ROW EXCLUSIVE MODE`);
    const [failed] = await apply([p], 'next', options);
    expect(failed!.error?.name).toBe('LockTimeoutError');
    const [st] = await status([p], options);
    expect(st).toMatchObject({ phase: 'expand', status: 'failed', next: 'dual-write', lastError: expect.stringContaining('gave up on a lock') });
    // Two forward, one reverse, and the sync functions of INSERT and UPDATE.
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_proc WHERE proname LIKE 'split-half%'`)).toEqual([{ n: 5 }]);

    // Roll back the half-applied phase: its functions go, the plan stays at expand.
    const back = await rollback(p, 'current', options);
    expect(back).toMatchObject({ phases: ['dual-write'], to: 'expand' });
    expect(back.error).toBeUndefined();
    expect(await db.sql(`SELECT count(*)::int AS n FROM pg_proc WHERE proname LIKE 'split-half%'`)).toEqual([{ n: 0 }]);
    expect(await describeTable(db, `${schema}.users`)).toEqual(expanded);

    // Fail it again, then apply once the blocker is gone: it picks up and finishes.
    expect((await apply([p], 'next', options))[0]!.error?.name).toBe('LockTimeoutError');
    await blocker.query('COMMIT');
    await blocker.end();
    const [retried] = await apply([p], 'backfill', options);
    expect(retried).toMatchObject({ phases: ['dual-write', 'backfill'], to: 'backfill' });
    expect((await verify(p, options)).differing).toBe(0);
    const events = await db.sql<{ phase: string; action: string; outcome: string }>(
      `SELECT phase, action, outcome FROM pgshift.events WHERE plan = $1 ORDER BY id`,
      [p.name],
    );
    expect(events.map((e) => `${e.action} ${e.phase} ${e.outcome}`)).toEqual([
      'apply expand succeeded',
      'apply dual-write failed',
      'rollback dual-write succeeded',
      'apply dual-write failed',
      'apply dual-write succeeded',
      'apply backfill succeeded',
    ]);
  });

  it('a runner killed mid-phase leaves the phase marked unfinished, and rollback undoes that phase first', async () => {
    const schema = 'killed';
    await usersIn(schema, 100);
    const before = await describeTable(db, `${schema}.users`);
    const p = splitIn(schema);
    const options = { databaseUrl: db.url };
    expect((await apply([p], 'dual-write', options))[0]!.error).toBeUndefined();
    // As a kill right after dual-write's last statement leaves it: the trigger exists, the state still says expand.
    await db.sql(`UPDATE pgshift.plans SET phase = 'expand', unfinished_phase = 'dual-write', unfinished_action = 'apply' WHERE name = $1`, [p.name]);
    const [st] = await status([p], options);
    expect(st).toMatchObject({ phase: 'expand', status: 'in_progress', next: 'dual-write', unfinished: { phase: 'dual-write', action: 'apply' } });

    // Rolling back expand alone would drop columns the trigger still writes; the unfinished phase goes first.
    const back = await rollback(p, 'expand', options);
    expect(back).toMatchObject({ phases: ['dual-write', 'expand'], to: null });
    expect(back.error).toBeUndefined();
    await db.sql(`INSERT INTO ${schema}.users (full_name) VALUES ('Still Works')`);
    expect(await describeTable(db, `${schema}.users`)).toEqual(before);
  });

  it('a row whose old value is what the reverse gives from NULLs is still backfilled, and verified', async () => {
    const schema = 'blank';
    await usersIn(schema, 50);
    // concat_ws(' ', NULL, NULL) is '': such a row must not pass for already in sync.
    await db.sql(`INSERT INTO ${schema}.users (full_name) VALUES ('')`);
    const p = splitIn(schema);
    const options = { databaseUrl: db.url };
    expect((await apply([p], 'dual-write', options))[0]!.error).toBeUndefined();
    expect((await verify(p, options)).differing).toBe(51);
    expect((await apply([p], 'backfill', options))[0]!.error).toBeUndefined();
    expect(await db.sql(`SELECT first_name, last_name FROM ${schema}.users WHERE full_name = ''`)).toEqual([{ first_name: '', last_name: null }]);
    expect((await verify(p, options)).differing).toBe(0);
  });

  it('a verification failure stops switch-read with exit 4 and the plan can be fixed and resumed', async () => {
    const schema = 'tamper';
    await usersIn(schema, 200);
    const p = splitIn(schema);
    const options = { databaseUrl: db.url };
    expect((await apply([p], 'backfill', options))[0]!.error).toBeUndefined();
    // A write that bypasses the trigger (as a superuser could) makes the sides disagree.
    await db.sql(`ALTER TABLE ${schema}.users DISABLE TRIGGER USER`);
    await db.sql(`UPDATE ${schema}.users SET first_name = 'Tampered' WHERE id = 5`);
    await db.sql(`ALTER TABLE ${schema}.users ENABLE TRIGGER USER`);
    const [failed] = await apply([p], 'next', options);
    expect(failed!.error?.name).toBe('VerificationError');
    expect(failed!.error?.message).toMatch(/1 row\(s\) .* differ.*key \["5"\]/s);
    // Roll back the backfill and run it again: the row is repaired.
    expect((await rollback(p, 'backfill', options)).error).toBeUndefined();
    const [fixed] = await apply([p], 'switch-read', options);
    expect(fixed!.error).toBeUndefined();
    expect(await db.sql(`SELECT first_name FROM ${schema}.users WHERE id = 5`)).toEqual([{ first_name: 'A5' }]);
  });
});
