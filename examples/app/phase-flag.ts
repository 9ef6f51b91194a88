import { readsSwitched } from '../../src/index.js';
import type { Db } from './types.js';

/** How long a release trusts the flag it read, as any feature flag is cached. */
export const FLAG_TTL_MS = 1_000;

/**
 * v2 reads the new columns once pgshift has applied `switch-read`, asking
 * `pgshift.phase()` at most once per `ttlMs`, so a rollback of switch-read
 * turns its reads back without a redeploy.
 */
export function phaseFlag(plan: string, ttlMs = FLAG_TTL_MS): (db: Db) => Promise<boolean> {
  let cached: { at: number; value: boolean } | null = null;
  return async (db) => {
    if (!cached || Date.now() - cached.at > ttlMs) cached = { at: Date.now(), value: await readsSwitched(db, plan) };
    return cached.value;
  };
}
