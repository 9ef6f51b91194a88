import { z } from 'zod';
import { toMilliseconds } from './duration.js';

/**
 * The one definition of the plan file format. TypeScript types are inferred
 * from it; unknown keys are rejected everywhere (`z.strictObject`).
 */

const PLAN_NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;

const identifier = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => Buffer.byteLength(s) <= 63, 'is longer than 63 bytes, PostgreSQL would truncate it')
  .refine((s) => !s.includes('\0'), 'must not contain a NUL byte');

/** Marks what pgshift could not write for you (`plan detect`, `plan new`); `lint` refuses it until a person does. */
export const PLACEHOLDER = 'TODO(pgshift):';

const sqlExpression = z
  .string()
  .trim()
  .min(1, 'must be a SQL expression')
  .refine((s) => !s.includes(PLACEHOLDER), `is a placeholder (${PLACEHOLDER}): write the SQL expression it asks for`);

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = toMilliseconds(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `is not a duration (try "2s" or "500ms"): ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return ms;
});

/** Constraints a new column may declare; enforced in `switch-read`. */
const newColumnConstraints = {
  not_null: z.boolean().optional(),
  default: sqlExpression.optional(),
  /**
   * `true`: the column alone is unique. `{ with: [cols] }`: the column
   * together with existing columns (a partitioned table's unique index must
   * include its partition key).
   */
  unique: z.union([z.boolean(), z.strictObject({ with: z.array(identifier).min(1, 'must name at least one column') })]).optional(),
};

const newColumn = z.strictObject({
  name: identifier,
  type: z.string().trim().min(1, 'must name a type'),
  using: sqlExpression,
  ...newColumnConstraints,
});

export const renameSchema = z.strictObject({ column: identifier, to: identifier });

export const splitSchema = z.strictObject({
  column: identifier,
  into: z.array(newColumn).min(2, 'needs at least two new columns (use rename or retype for one)'),
  reverse: sqlExpression,
});

export const mergeSchema = z.strictObject({
  columns: z.array(identifier).min(2, 'needs at least two columns to merge'),
  into: newColumn,
  reverse: z.record(identifier, sqlExpression),
});

export const retypeSchema = z.strictObject({
  column: identifier,
  to: z.string().trim().min(1, 'must name a type'),
  /** The new column's name while both exist, and after contract; default `<column>_new`. */
  as: identifier.optional(),
  using: sqlExpression,
  reverse: sqlExpression,
  ...newColumnConstraints,
});

export const backfillSchema = z.strictObject({
  batch_size: z.number().int().min(1).max(10_000_000).optional(),
  pause: duration.optional(),
  /** 0 keeps every batch at `batch_size`. */
  target_batch_ms: z.number().int().min(0).optional(),
  max_replica_lag: duration.optional(),
});

export const guardsSchema = z.strictObject({
  lock_timeout: duration.optional(),
  statement_timeout: duration.optional(),
  retries: z.number().int().min(0).max(100).optional(),
  old_code_quiet: duration.optional(),
});

/** A plan file as written. Exactly one change kind must be present (checked in `load`). */
export const planFileSchema = z.strictObject({
  plan: z.string().regex(PLAN_NAME, 'must be kebab-case: lowercase letters, digits and single dashes').max(60).optional(),
  table: z
    .string()
    .min(1)
    .regex(/^("[^"]+"|[^."]+)(\.("[^"]+"|[^."]+))?$/, 'must be "table" or "schema.table"'),
  key: z.array(identifier).min(1).optional(),
  rename: renameSchema.optional(),
  split: splitSchema.optional(),
  merge: mergeSchema.optional(),
  retype: retypeSchema.optional(),
  backfill: backfillSchema.optional(),
  guards: guardsSchema.optional(),
});

export type PlanFile = z.infer<typeof planFileSchema>;
export type NewColumnSpec = z.infer<typeof newColumn>;
export type RenameSpec = z.infer<typeof renameSchema>;
export type SplitSpec = z.infer<typeof splitSchema>;
export type MergeSpec = z.infer<typeof mergeSchema>;
export type RetypeSpec = z.infer<typeof retypeSchema>;

/** The change kinds, in the order the README presents them. */
export const CHANGE_KINDS = ['rename', 'split', 'merge', 'retype'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

/** Is this a valid plan name? */
export function isPlanName(name: string): boolean {
  return PLAN_NAME.test(name);
}
