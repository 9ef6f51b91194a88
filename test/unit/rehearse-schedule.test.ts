import { describe, expect, it } from 'vitest';
import { lastLines } from '../../src/rehearse/command.js';
import { rehearsalSchedule } from '../../src/rehearse/schedule.js';

const row = (s: ReturnType<typeof rehearsalSchedule>[number]): string =>
  `${s.direction} ${s.action} ${s.phase} -> ${s.at ?? 'none'}: ${[s.runOld && 'old', s.runNew && 'new', s.verify && 'verify', s.quiet && 'quiet'].filter(Boolean).join(' ')}`;

describe('rehearsal schedule', () => {
  it('goes forward to stop-write, back to none, then forward through contract, running each side only where it may run', () => {
    expect(rehearsalSchedule().map(row)).toEqual([
      'forward apply expand -> expand: old',
      'forward apply dual-write -> dual-write: old',
      'forward apply backfill -> backfill: old verify',
      'forward apply switch-read -> switch-read: old new verify',
      'forward apply stop-write -> stop-write: new verify',
      'back rollback stop-write -> switch-read: old new verify',
      'back rollback switch-read -> backfill: old verify',
      'back rollback backfill -> dual-write: old verify',
      'back rollback dual-write -> expand: old',
      'back rollback expand -> none: old',
      'forward apply expand -> expand: quiet',
      'forward apply dual-write -> dual-write: quiet',
      'forward apply backfill -> backfill: quiet',
      'forward apply switch-read -> switch-read: quiet',
      'forward apply stop-write -> stop-write: quiet',
      'forward apply contract -> contract: new',
    ]);
  });

  it('runs the new release from --new-from on', () => {
    const newAt = rehearsalSchedule('dual-write')
      .filter((s) => s.runNew)
      .map((s) => `${s.direction} ${s.at}`);
    expect(newAt).toEqual([
      'forward dual-write',
      'forward backfill',
      'forward switch-read',
      'forward stop-write',
      'back switch-read',
      'back backfill',
      'back dual-write',
      'forward contract',
    ]);
  });

  it('keeps the last non-empty lines of a command output', () => {
    expect(lastLines('a\n\nb\r\nc\n', 2)).toEqual(['b', 'c']);
  });
});
