import { describe, expect, it } from 'vitest';
import { defaultWorkers, type ServerFacts } from '../../src/backfill/default-workers.js';
import { MAX_DEFAULT_WORKERS } from '../../src/defaults.js';

/** An idle server with PostgreSQL's default max_parallel_workers and connections, and a table of 1M rows. */
const IDLE: ServerFacts = { maxParallelWorkers: 8, activeSessions: 0, freeConnections: 97, rows: 1_000_000 };

/** max_parallel_workers set to the cores, as tuning guides do. */
const cores = (n: number): ServerFacts => ({ ...IDLE, maxParallelWorkers: n, rows: 10_000_000 });

describe('the default backfill.workers', () => {
  it('is 2 on an idle server with PostgreSQL’s default max_parallel_workers (8)', () => {
    expect(defaultWorkers(IDLE).workers).toBe(2);
  });

  it('takes a quarter of the cores max_parallel_workers stands for: 1 on 2, 2 on 8, the cap on 32', () => {
    expect(defaultWorkers(cores(2)).workers).toBe(1);
    expect(defaultWorkers(cores(8)).workers).toBe(2);
    expect(defaultWorkers(cores(32)).workers).toBe(MAX_DEFAULT_WORKERS);
    expect(defaultWorkers(cores(64)).workers).toBe(MAX_DEFAULT_WORKERS);
  });

  it('is 1 when the operator turned parallel queries off', () => {
    expect(defaultWorkers({ ...IDLE, maxParallelWorkers: 0 }).workers).toBe(1);
  });

  it('leaves the application the cores its active sessions use', () => {
    expect(defaultWorkers({ ...cores(32), activeSessions: 20 }).workers).toBe(4);
    expect(defaultWorkers({ ...cores(32), activeSessions: 26 }).workers).toBe(3);
    expect(defaultWorkers({ ...IDLE, activeSessions: 5 }).workers).toBe(1);
    expect(defaultWorkers({ ...IDLE, activeSessions: 40 }).workers).toBe(1);
  });

  it('needs two free connections per worker beyond the runner’s spare ones', () => {
    expect(defaultWorkers({ ...cores(32), freeConnections: 9 }).workers).toBe(2);
    expect(defaultWorkers({ ...cores(32), freeConnections: 3 }).workers).toBe(1);
  });

  it('walks a small or never-analyzed table with one worker', () => {
    expect(defaultWorkers({ ...IDLE, rows: 150_000 }).workers).toBe(1);
    expect(defaultWorkers({ ...IDLE, rows: 0 }).workers).toBe(1);
    expect(defaultWorkers({ ...cores(32), rows: 300_000 }).workers).toBe(3);
  });

  it('says why, naming each limit', () => {
    const { why } = defaultWorkers({ ...IDLE, activeSessions: 1 });
    expect(why).toContain('max_parallel_workers 8 (a quarter: 2)');
    expect(why).toContain('1 other session active');
    expect(why).toContain('~1000000 rows');
  });
});
