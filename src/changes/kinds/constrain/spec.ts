import { z } from 'zod';
import { objectName, type QualifiedName } from '../../../db/ident.js';
import { identifier, sqlExpression } from '../fields.js';

/** `schema.table(column)`, each part a plain or double-quoted identifier. */
const PART = String.raw`(?:"(?:[^"]|"")+"|[^."()\s]+)`;
const REFERENCE = new RegExp(String.raw`^\s*(${PART})\.(${PART})\s*\(\s*(${PART})\s*\)\s*$`);

export const constrainSchema = z.strictObject({
  column: identifier,
  /** The column becomes NOT NULL (at contract, proven by a validated CHECK). */
  not_null: z.literal(true, { message: 'must be true (leave it out otherwise)' }).optional(),
  /** A CHECK constraint's condition, over the table's columns. */
  check: sqlExpression.optional(),
  /** A foreign key from the column to a unique column of another table. */
  foreign_key: z.strictObject({ references: z.string().regex(REFERENCE, 'must be schema.table(column)') }).optional(),
  /** The value a row that would violate the constraint gets instead, over the table's columns (e.g. `coalesce(email, '')`). */
  fix: sqlExpression.optional(),
});

export type ConstrainSpec = z.output<typeof constrainSchema>;

/** The referenced table and column of `foreign_key.references`, unquoted. */
export interface Reference {
  readonly table: QualifiedName;
  readonly column: string;
}

const unquote = (part: string): string => (part.startsWith('"') ? part.slice(1, -1).replaceAll('""', '"') : part.toLowerCase());

/** `foreign_key.references` split into table and column (names unquoted as PostgreSQL would fold them). */
export function parseReference(text: string): Reference {
  const m = REFERENCE.exec(text);
  if (!m) throw new Error(`not a reference: ${text}`);
  return { table: { schema: unquote(m[1]!), name: unquote(m[2]!) }, column: unquote(m[3]!) };
}

/** The names of the constraints a plan adds (unquoted), PostgreSQL's own naming where it has one. */
export function constraintNames(table: QualifiedName, column: string): { check: string; foreignKey: string; notNull: string } {
  return {
    check: objectName(table.name, column, 'check'),
    foreignKey: objectName(table.name, column, 'fkey'),
    notNull: objectName(table.name, column, 'pgshift_nn'),
  };
}

/** What a constrain learns at plan start, kept in the plan's facts under `constrain`. */
export interface ConstrainFacts {
  readonly constrain: {
    /** `fix` as PostgreSQL printed it over the trigger's row (`new.<column>`), names qualified, cast to the column's type; null without a fix. */
    readonly fix: string | null;
    /** `check` printed the same way, cast to boolean; null without a check. */
    readonly check: string | null;
    /** The CHECK constraint as PostgreSQL printed it over the table's columns (`CHECK (…)`), names qualified; null without a check. */
    readonly checkDefinition: string | null;
    /** The referenced table and column of `foreign_key`; null without one. */
    readonly references: Reference | null;
  };
}
