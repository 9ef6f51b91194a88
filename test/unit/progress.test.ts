import { describe, expect, it } from 'vitest';
import { formatSeconds, progressEvent } from '../../src/cli/progress.js';

describe('backfill progress output', () => {
  it('formats an ETA for people', () => {
    expect(formatSeconds(42.4)).toBe('42s');
    expect(formatSeconds(185)).toBe('3m05s');
    expect(formatSeconds(3_725)).toBe('1h02m');
  });

  it('emits one JSON event with done/total, rate, ETA and what it waits for', () => {
    const base = {
      plan: 'p',
      rowsDone: 250,
      rowsTotal: 1_000,
      batchSize: 400,
      lastKey: ['250'],
      done: false,
      rowsPerSecond: 99.6,
      etaSeconds: 7.53,
      waiting: null,
    };
    expect(progressEvent(base)).toEqual({
      event: 'backfill_progress',
      plan: 'p',
      done: 250,
      total: 1_000,
      percent: 25,
      rows_per_second: 100,
      eta_seconds: 8,
      batch_size: 400,
      waiting: null,
      finished: false,
    });
    expect(progressEvent({ ...base, rowsTotal: 0, etaSeconds: null, waiting: 'waiting for replica lag' })).toMatchObject({
      percent: 100,
      eta_seconds: null,
      waiting: 'waiting for replica lag',
    });
  });
});
