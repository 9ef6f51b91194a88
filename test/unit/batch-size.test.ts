import { describe, expect, it } from 'vitest';
import { BatchSizer } from '../../src/backfill/batch-size.js';
import { MAX_BATCH_ROWS, MIN_BATCH_ROWS } from '../../src/defaults.js';

describe('adaptive batch size', () => {
  it('moves toward the rows that fit the target duration, at most doubling per batch', () => {
    const s = new BatchSizer(1_000, 200, 30_000);
    s.observe(1_000, 20); // 50 rows/ms: 10,000 would take 200 ms
    expect(s.size).toBe(2_000);
    s.observe(2_000, 40);
    s.observe(4_000, 80);
    expect(s.size).toBe(8_000);
    s.observe(8_000, 160);
    expect(s.size).toBe(10_000);
    s.observe(10_000, 200);
    expect(s.size).toBe(10_000);
  });

  it('halves at most after one slow batch, and shrinks by a quarter after a statement timeout', () => {
    const s = new BatchSizer(10_000, 200, 30_000);
    s.observe(10_000, 10_000);
    expect(s.size).toBe(5_000);
    expect(s.timedOut()).toBe(true);
    expect(s.size).toBe(1_250);
  });

  it('keeps the target well under statement_timeout', () => {
    expect(new BatchSizer(1_000, 5_000, 1_000).targetMs).toBe(250);
    expect(new BatchSizer(1_000, 200, 0).targetMs).toBe(200);
  });

  it('stays within bounds and gives up shrinking at the floor', () => {
    const big = new BatchSizer(MAX_BATCH_ROWS, 200, 30_000);
    big.observe(MAX_BATCH_ROWS, 1);
    expect(big.size).toBe(MAX_BATCH_ROWS);
    const small = new BatchSizer(MIN_BATCH_ROWS, 200, 30_000);
    expect(small.timedOut()).toBe(false);
    const tiny = new BatchSizer(10, 200, 30_000);
    tiny.observe(10, 10_000);
    expect(tiny.size).toBe(10);
  });

  it('keeps a fixed size without a target, but still shrinks on timeout', () => {
    const s = new BatchSizer(4_000, null, 30_000);
    s.observe(4_000, 1);
    expect(s.size).toBe(4_000);
    expect(s.timedOut()).toBe(true);
    expect(s.size).toBe(1_000);
  });
});

describe('a batch waits for a held row about one batch long', () => {
  const guards = { lockTimeoutMs: 2_000, statementTimeoutMs: 30_000, retries: 8, maxWaitMs: 300_000, oldCodeQuietMs: 0 };
  it('caps lock_timeout at the target, with a floor for short application transactions', async () => {
    const { batchGuards } = await import('../../src/backfill/batch.js');
    expect(batchGuards(guards, 200)).toEqual({ ...guards, lockTimeoutMs: 200 });
    expect(batchGuards(guards, 5)).toEqual({ ...guards, lockTimeoutMs: 100 });
    expect(batchGuards(guards, 5_000)).toEqual(guards);
    expect(batchGuards(guards, null)).toEqual(guards);
  });
});
