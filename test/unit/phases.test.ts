import { describe, expect, it } from 'vitest';
import { nextPhase, phasesToApply, phasesToRollBack, previousPhase } from '../../src/phases/phases.js';

describe('phase arithmetic', () => {
  it('advances one phase with next, and up to a named phase inclusive', () => {
    expect(phasesToApply(null, 'next')).toEqual(['expand']);
    expect(phasesToApply('backfill', 'next')).toEqual(['switch-read']);
    expect(phasesToApply(null, 'backfill')).toEqual(['expand', 'dual-write', 'backfill']);
    expect(phasesToApply('contract', 'next')).toEqual([]);
  });

  it('is a no-op when already at or past the named phase', () => {
    expect(phasesToApply('backfill', 'backfill')).toEqual([]);
    expect(phasesToApply('switch-read', 'expand')).toEqual([]);
  });

  it('rolls back the current phase, or down to and including a named one, newest first', () => {
    expect(phasesToRollBack('backfill', 'current')).toEqual(['backfill']);
    expect(phasesToRollBack('stop-write', 'dual-write')).toEqual(['stop-write', 'switch-read', 'backfill', 'dual-write']);
    expect(phasesToRollBack(null, 'current')).toEqual([]);
  });

  it('knows neighbours at both ends', () => {
    expect(nextPhase(null)).toBe('expand');
    expect(nextPhase('contract')).toBeNull();
    expect(previousPhase('expand')).toBeNull();
    expect(previousPhase('contract')).toBe('stop-write');
  });
});
