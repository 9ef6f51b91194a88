import { z } from 'zod';

/**
 * Pieces of the plan file format that change kinds share: every kind's
 * schema is built from them, and `plan/schema.ts` assembles the file format
 * from the kinds.
 */

export const identifier = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => Buffer.byteLength(s) <= 63, 'is longer than 63 bytes, PostgreSQL would truncate it')
  .refine((s) => !s.includes('\0'), 'must not contain a NUL byte');

/** Marks what pgshift could not write for you (`plan detect`, `plan new`); `lint` refuses it until a person does. */
export const PLACEHOLDER = 'TODO(pgshift):';

export const sqlExpression = z
  .string()
  .trim()
  .min(1, 'must be a SQL expression')
  .refine((s) => !s.includes(PLACEHOLDER), `is a placeholder (${PLACEHOLDER}): write the SQL expression it asks for`);

export const typeName = z.string().trim().min(1, 'must name a type');

/** Constraints a new column may declare; enforced in `switch-read`. */
export const newColumnConstraints = {
  not_null: z.boolean().optional(),
  default: sqlExpression.optional(),
  /**
   * `true`: the column alone is unique. `{ with: [cols] }`: the column
   * together with existing columns (a partitioned table's unique index must
   * include its partition key).
   */
  unique: z.union([z.boolean(), z.strictObject({ with: z.array(identifier).min(1, 'must name at least one column') })]).optional(),
};

export const newColumn = z.strictObject({
  name: identifier,
  type: typeName,
  using: sqlExpression,
  ...newColumnConstraints,
});

export type NewColumnSpec = z.infer<typeof newColumn>;
