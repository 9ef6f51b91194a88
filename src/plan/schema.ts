import { z } from 'zod';
import { identifier } from '../changes/kinds/fields.js';
import { kindFields } from '../changes/kinds/registry.js';
import { toMilliseconds } from './duration.js';
import { toBytes } from './size.js';

/**
 * The one definition of the plan file format. TypeScript types are inferred
 * from it; unknown keys are rejected everywhere (`z.strictObject`).
 */

const PLAN_NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** `plan detect` and `plan new` mark what a person must write with it; `lint` refuses it. */
export { PLACEHOLDER } from '../changes/kinds/fields.js';

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = toMilliseconds(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `is not a duration (try "2s" or "500ms"): ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return ms;
});

/** A number of bytes, or a size as postgresql.conf writes it (`64MB`; units of 1024). */
const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = toBytes(value);
  if (bytes === null) {
    ctx.addIssue({ code: 'custom', message: `is not a size (try "64MB" or "512kB"): ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return bytes;
});

/** A size per second: `8MB`, `8MB/s`, or a number of bytes. */
const rate = z.union([z.string().transform((v) => v.replace(/\s*\/\s*s(ec)?\s*$/i, '')), z.number()]).pipe(size);

export const backfillSchema = z.strictObject({
  batch_size: z.number().int().min(1).max(10_000_000).optional(),
  pause: duration.optional(),
  /** 0 keeps every batch at `batch_size`. */
  target_batch_ms: z.number().int().min(0).optional(),
  max_replica_lag: duration.optional(),
  /** Runners walking disjoint key ranges (a partitioned table: its partitions) at once, each with its own connection and checkpoint. */
  workers: z.number().int().min(1).max(16).optional(),
  /** Wait while a logical replication slot is more than this behind the current WAL position (0 = off). */
  max_slot_lag: size.optional(),
  /** An inactive slot that has not moved for this long is named and no longer waited for (0 = always wait). */
  abandoned_slot_after: duration.optional(),
  /** WAL bytes per second the batches may write on average (0 = off). */
  max_wal_rate: rate.optional(),
  /** SQL run between batches, read-only; while it returns true the walk waits. */
  throttle_query: z.string().trim().min(1).optional(),
  /** Wait while more sessions than this (not pgshift's) are active or waiting (0 = off). */
  max_active_sessions: z.number().int().min(0).optional(),
});

/** Lifecycle events a hook may run on (docs/hooks.md); the plan's `hooks:` keys and `--hook <event>=` use these names. */
export const HOOK_EVENTS = ['phase_start', 'phase_success', 'phase_failure', 'backfill_progress', 'throttle', 'gate_refused'] as const;

const hookCommands = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const hooksSchema = z.strictObject({
  ...(Object.fromEntries(HOOK_EVENTS.map((event) => [event, hookCommands.optional()])) as Record<
    (typeof HOOK_EVENTS)[number],
    z.ZodOptional<typeof hookCommands>
  >),
  /** `backfill_progress` runs each time the backfill crosses another multiple of this many percent. */
  progress_every: z.number().int().min(1).max(100).optional(),
  /** How long one hook may run before it is killed (and logged as failed). */
  timeout: duration.optional(),
});

export const guardsSchema = z.strictObject({
  lock_timeout: duration.optional(),
  statement_timeout: duration.optional(),
  retries: z.number().int().min(0).max(100).optional(),
  max_wait: duration.optional(),
  old_code_quiet: duration.optional(),
});

export const contractSchema = z.strictObject({
  /** How long the archived old columns are kept before the first apply after it drops them (`0`: at contract). */
  keep: duration.optional(),
});

/** A plan file as written. Exactly one change kind must be present (checked in `load`). */
export const planFileSchema = z.strictObject({
  plan: z.string().regex(PLAN_NAME, 'must be kebab-case: lowercase letters, digits and single dashes').max(60).optional(),
  table: z
    .string()
    .min(1)
    .regex(/^("[^"]+"|[^."]+)(\.("[^"]+"|[^."]+))?$/, 'must be "table" or "schema.table"'),
  key: z.array(identifier).min(1).optional(),
  /** Plans this one ships after: it starts only once each of them is contracted (besides the folder's order for its table). */
  after: z
    .union([z.string().regex(PLAN_NAME, 'must name a plan (kebab-case)'), z.array(z.string().regex(PLAN_NAME, 'must name a plan (kebab-case)')).min(1)])
    .optional(),
  /** One key per change kind (see changes/kinds/registry.ts); `load` checks that exactly one is present. */
  ...kindFields,
  backfill: backfillSchema.optional(),
  guards: guardsSchema.optional(),
  contract: contractSchema.optional(),
  hooks: hooksSchema.optional(),
});

export type PlanFile = z.infer<typeof planFileSchema>;

/** Is this a valid plan name? */
export function isPlanName(name: string): boolean {
  return PLAN_NAME.test(name);
}
