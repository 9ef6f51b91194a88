import { describe, expect, it } from 'vitest';
import { PlanError } from '../../src/errors.js';
import { parsePlan, splitTableName } from '../../src/plan/load.js';
import { SPLIT_YAML } from '../helpers/fixtures.js';

function problemsOf(text: string): PlanError['problems'] {
  try {
    parsePlan(text, 'plans/bad.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(PlanError);
    return (error as PlanError).problems;
  }
  throw new Error('expected a PlanError');
}

describe('parsePlan', () => {
  it('reads a split plan with its defaults and durations', () => {
    const plan = parsePlan(SPLIT_YAML, 'plans/split.yaml');
    expect(plan.name).toBe('split-users-full-name');
    expect(plan.table).toEqual({ schema: 'public', name: 'users' });
    expect(plan.change.kind).toBe('split');
    // vitest.config.ts sets PGSHIFT_OLD_CODE_QUIET=0, the default for plans that do not name it.
    expect(plan.guards).toEqual({ lockTimeoutMs: 500, statementTimeoutMs: 10_000, retries: 1, maxWaitMs: 300_000, oldCodeQuietMs: 0 });
    expect(plan.backfill).toMatchObject({ batchSize: 500, pauseMs: 0 });
    expect(plan.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it('takes the plan name from the file name when absent, and applies the documented defaults', () => {
    const env = process.env.PGSHIFT_OLD_CODE_QUIET;
    delete process.env.PGSHIFT_OLD_CODE_QUIET;
    const plan = parsePlan('table: users\nrename: { column: a, to: b }\n', 'plans/rename-a.yaml');
    process.env.PGSHIFT_OLD_CODE_QUIET = env;
    expect(plan.name).toBe('rename-a');
    expect(plan.table).toEqual({ name: 'users' });
    expect(plan.guards).toEqual({ lockTimeoutMs: 50, statementTimeoutMs: 30_000, retries: 8, maxWaitMs: 300_000, oldCodeQuietMs: 15 * 60_000 });
    expect(plan.backfill).toMatchObject({ batchSize: 5000, pauseMs: 0, targetBatchMs: 50 });
  });

  it('reads guards.old_code_quiet, which wins over PGSHIFT_OLD_CODE_QUIET', () => {
    expect(parsePlan('table: users\nrename: { column: a, to: b }\nguards: { old_code_quiet: 2m }\n', 'plans/r.yaml').guards.oldCodeQuietMs).toBe(120_000);
    const env = process.env.PGSHIFT_OLD_CODE_QUIET;
    process.env.PGSHIFT_OLD_CODE_QUIET = '3s';
    try {
      expect(parsePlan('table: users\nrename: { column: a, to: b }\n', 'plans/r.yaml').guards.oldCodeQuietMs).toBe(3_000);
    } finally {
      process.env.PGSHIFT_OLD_CODE_QUIET = env;
    }
  });

  it('reads hooks: one command or a list per event, in order, with the documented defaults; the checksum leaves them out', () => {
    const base = 'table: users\nrename: { column: a, to: b }\n';
    const plan = parsePlan(`${base}hooks:\n  phase_start: ./a.sh\n  phase_failure: [./b.sh, ./c.sh]\n  progress_every: 25\n  timeout: 2s\n`, 'plans/r.yaml');
    expect(plan.hooks).toEqual({
      commands: [
        { event: 'phase_start', command: './a.sh' },
        { event: 'phase_failure', command: './b.sh' },
        { event: 'phase_failure', command: './c.sh' },
      ],
      progressEvery: 25,
      timeoutMs: 2_000,
    });
    expect(plan.checksum).toBe(parsePlan(base, 'plans/r.yaml').checksum);
    expect(parsePlan(base, 'plans/r.yaml').hooks).toEqual({ commands: [], progressEvery: 10, timeoutMs: 10_000 });
  });

  it('refuses an unknown hook event and a progress_every out of range, naming the line', () => {
    const problems = problemsOf('table: users\nrename: { column: a, to: b }\nhooks:\n  on_done: ./a.sh\n  progress_every: 0\n');
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'hooks.on_done', line: 4, message: expect.stringMatching(/unknown key/) }),
        expect.objectContaining({ path: 'hooks.progress_every', line: 5 }),
      ]),
    );
  });

  it('reports every mistake at once, each with its line and field', () => {
    const problems = problemsOf(
      [
        'plan: Not_Kebab', // line 1
        'table: users',
        'colour: blue', // line 3: unknown key
        'split:',
        '  column: full_name',
        '  into:',
        '    - name: first',
        '      type: text',
        '      usinq: x', // line 9: typo, and `using` missing
        '    - name: last',
        '      type: text',
        '      using: y',
        '  reverse: z',
        'guards:',
        '  lock_timeout: soon', // line 15
      ].join('\n'),
    );
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p]));
    expect(byPath['plan']).toMatchObject({ line: 1, file: 'plans/bad.yaml' });
    expect(byPath['colour']).toMatchObject({ line: 3, message: expect.stringContaining('unknown key') });
    expect(byPath['split.into[0].usinq']).toMatchObject({ line: 9 });
    expect(byPath['split.into[0].using']).toMatchObject({ line: 7 });
    expect(byPath['guards.lock_timeout']).toMatchObject({ line: 15, message: expect.stringContaining('duration') });
    expect(problems.length).toBeGreaterThanOrEqual(5);
  });

  it('refuses a plan with no change or two changes', () => {
    expect(problemsOf('table: users\n')[0]!.message).toMatch(/exactly one change/);
    expect(problemsOf('table: users\nrename: { column: a, to: b }\nretype: { column: a, to: int, using: a, reverse: a }\n')[0]!.message).toMatch(
      /rename and retype/,
    );
  });

  it('keeps batches at batch_size when target_batch_ms is 0', () => {
    expect(parsePlan(SPLIT_YAML.replace('pause: 0ms', 'pause: 0ms, target_batch_ms: 0'), 'a.yaml').backfill.targetBatchMs).toBeNull();
    expect(parsePlan(SPLIT_YAML, 'a.yaml').backfill.targetBatchMs).toBe(50);
  });

  it('reads the throttles on slots, WAL rate, sessions and a query, sizes in units of 1024, all off by default', () => {
    const read = (backfill: string) => parsePlan(`table: users\nrename: { column: a, to: b }\nbackfill: ${backfill}\n`, 'plans/r.yaml').backfill;
    expect(
      read('{ max_slot_lag: 64MB, max_wal_rate: 8MB/s, max_active_sessions: 20, abandoned_slot_after: 2m, throttle_query: "SELECT false" }'),
    ).toMatchObject({
      maxSlotLagBytes: 64 * 1024 ** 2,
      maxWalRateBytes: 8 * 1024 ** 2,
      maxActiveSessions: 20,
      abandonedSlotAfterMs: 120_000,
      throttleQuery: 'SELECT false',
    });
    expect(read('{ max_slot_lag: 512kB, max_wal_rate: 1048576 }')).toMatchObject({ maxSlotLagBytes: 512 * 1024, maxWalRateBytes: 1024 ** 2 });
    expect(read('{ max_slot_lag: 0, max_wal_rate: 0, max_active_sessions: 0 }')).toMatchObject({
      maxSlotLagBytes: null,
      maxWalRateBytes: null,
      maxActiveSessions: null,
    });
    expect(read('{ batch_size: 10 }')).toMatchObject({
      maxSlotLagBytes: null,
      maxWalRateBytes: null,
      throttleQuery: null,
      maxActiveSessions: null,
      abandonedSlotAfterMs: 600_000,
    });
    const problems = problemsOf('table: users\nrename: { column: a, to: b }\nbackfill: { max_slot_lag: lots, max_wal_rate: 5 parsecs, throttle_query: "" }\n');
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p.message]));
    expect(byPath['backfill.max_slot_lag']).toContain('is not a size (try "64MB" or "512kB")');
    expect(byPath['backfill.max_wal_rate']).toContain('is not a size');
    expect(byPath['backfill.throttle_query']).toBeDefined();
  });

  it('refuses YAML that does not parse, naming the line', () => {
    const [p] = problemsOf('table: users\nrename: { column: a, to: b\n');
    expect(p!.line).toBeGreaterThan(0);
  });

  it('refuses duplicate keys and non-mapping documents', () => {
    expect(problemsOf('table: a\ntable: b\nrename: { column: a, to: b }\n')[0]!.message).toMatch(/unique/i);
    expect(problemsOf('- just a list\n')[0]!.message).toMatch(/mapping/);
  });

  it('accepts any column name as a name: quoting happens when SQL is built', () => {
    const plan = parsePlan('table: users\nrename: { column: "r; DROP TABLE x", to: "b" }\n', 'p.yaml');
    expect(plan.change).toMatchObject({ kind: 'rename', column: 'r; DROP TABLE x' });
  });

  it('refuses names longer than PostgreSQL keeps', () => {
    const long = 'x'.repeat(64);
    expect(problemsOf(`table: users\nrename: { column: a, to: ${long} }\n`)[0]).toMatchObject({ path: 'rename.to' });
  });

  it('keeps guards and backfill tuning out of the checksum, and the change in it', () => {
    const base = parsePlan(SPLIT_YAML, 'a.yaml');
    const tuned = parsePlan(SPLIT_YAML.replace('lock_timeout: 500ms', 'lock_timeout: 5s').replace('batch_size: 500', 'batch_size: 900'), 'a.yaml');
    const edited = parsePlan(SPLIT_YAML.replace("split_part(full_name, ' ', 1)", "split_part(full_name, ' ', 2)"), 'a.yaml');
    expect(tuned.checksum).toBe(base.checksum);
    expect(edited.checksum).not.toBe(base.checksum);
  });
});

describe('splitTableName', () => {
  it('splits schema and table, keeping quoted dots', () => {
    expect(splitTableName('public.users')).toEqual({ schema: 'public', name: 'users' });
    expect(splitTableName('"odd.schema"."Users"')).toEqual({ schema: 'odd.schema', name: 'Users' });
    expect(splitTableName('users')).toEqual({ name: 'users' });
  });
});
