import { describe, expect, it } from 'vitest';
import { parseLsn } from '../../src/backfill/throttle.js';

describe('WAL positions', () => {
  it('compare as numbers across the 32-bit boundary', () => {
    expect(parseLsn('0/16B3748')).toBe(0x16b3748n);
    expect(parseLsn('1/0') > parseLsn('0/FFFFFFFF')).toBe(true);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
  });
});
