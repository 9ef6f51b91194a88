import type { z } from 'zod';
import type { Client } from '../../db/client.js';
import type { ColumnFacts, TableFacts } from '../../db/catalog.js';
import type { ColumnObjects } from '../../db/column-objects.js';
import type { QualifiedName } from '../../db/ident.js';
import { PlanError } from '../../errors.js';
import type { DependentView } from '../dependent-views.js';
import type { ChangeOutline, ColumnChange, PlanFacts } from '../model.js';
import type { PhaseProgram } from '../steps.js';

/**
 * One change kind, whole: its part of the plan file, what it needs from the
 * catalog, and what it compiles to. Each kind lives in `kinds/<kind>/` and is
 * checked against this interface with `satisfies`; `kinds/registry.ts` lists
 * them, and the file format, the `Change` type and parsing are derived from
 * that list. Adding a kind: write its module, add it to the registry, add its
 * row to the lifecycle test table (test/db/roles.test.ts), its page under
 * docs/kinds/ and its example plan under plans/ (see CONTRIBUTING.md).
 *
 * `Schema` is what the plan file holds under the kind's key; `Facts` is what
 * the kind learns from the catalog when the plan starts, stored with the
 * plan's facts in its state (so its keys are part of the state's format: a
 * kind only adds keys, never renames one, or plans in flight lose them).
 */
export interface ChangeKindModule<Name extends string, Schema extends z.ZodType, Facts extends object = object> {
  /** The plan file's key for this kind, e.g. `rename`. */
  readonly name: Name;
  /** One line for `--help` and the docs. */
  readonly summary: string;
  /** How `plan new` is called for this kind, e.g. `plan new rename table.column new_name`. */
  readonly usage: string;
  /** What the plan file holds under `name`. */
  readonly schema: Schema;
  /**
   * The kind moves what depends on the old column (indexes, constraints, both
   * ends of foreign keys) to the new one: only a rename can, since only it
   * keeps the values. Other kinds refuse a column referenced by a foreign key.
   */
  readonly carries: boolean;
  /** `reverse` should give back the old value from what `using` made of it; `lint` samples real rows to check. */
  readonly inverse: boolean;
  /** Columns that must exist, columns that must not yet, and the expressions to type-check. */
  outline(spec: z.output<Schema>): ChangeOutline;
  /** Checks between the kind's own fields that its schema cannot say, each with its field. */
  check?(spec: z.output<Schema>): KindProblem[];
  /** What the kind alone needs from the catalog, after the checks every kind shares; runs in a transaction that is rolled back. */
  learn?(spec: z.output<Schema>, catalog: KindCatalog): Promise<{ readonly problems: readonly KindProblem[]; readonly facts: Facts }>;
  /** The old and new columns, which the shared six-phase program is compiled from. */
  resolve(spec: z.output<Schema>, facts: PlanFacts & Partial<Facts>): ColumnChange;
  /** A program of the kind's own, when the change has another shape than old ↔ new columns; undefined = the shared one. */
  program?(spec: z.output<Schema>, facts: PlanFacts & Partial<Facts>, plan: string): PhaseProgram | undefined;
  /** The unique indexes the plan declares on new columns, with the field each was written in. */
  uniques(spec: z.output<Schema>): DeclaredUnique[];
  /** `plan new`: the kind's part of the plan file for these columns and arguments, expressions proposed where possible. */
  propose(request: Proposal): Record<string, unknown>;
}

/** A problem a kind finds, at a field under its key. */
export interface KindProblem {
  readonly path: string;
  readonly message: string;
}

/** What the shared catalog check already read, handed to a kind's `learn`. */
export interface KindCatalog {
  readonly client: Client;
  readonly table: QualifiedName;
  readonly tableFacts: TableFacts;
  /** What depends on each column the change reads, by column. */
  readonly objects: ReadonlyMap<string, ColumnObjects>;
  /** Views and materialized views reading those columns. */
  readonly views: readonly DependentView[];
  /** The canonical type of the first new column ('' when the kind adds none). */
  readonly newType: string;
}

/** A declared `unique` of a new column, with the field it was written in. */
export interface DeclaredUnique {
  readonly field: string;
  readonly column: string;
  readonly with: readonly string[];
}

/** `plan new`'s request, with the existing columns it names. */
export interface Proposal {
  readonly targets: readonly string[];
  readonly old: readonly ColumnFacts[];
  /** Propose a cast back where one is possible (false after the server refused one). */
  readonly castBack: boolean;
}

/** An expression `plan new` proposes, or null for a placeholder, with the type a placeholder stands for when checked. */
export interface Proposed {
  readonly sql: string | null;
  readonly type: string;
}

export const proposed = (sql: string | null, type: string): Proposed => ({ sql, type });

/** Refuse `plan new` arguments unless there are `count` targets (negative: at least that many). */
export function needTargets(request: Proposal, count: number, usage: string): void {
  if (request.targets.length !== count && !(count < 0 && request.targets.length >= -count))
    throw new PlanError([{ file: '', path: 'targets', message: `needs ${usage}` }]);
}

/** The facts of an old column, which validation guaranteed exists. */
export function oldFacts(facts: PlanFacts, name: string): ColumnFacts {
  const found = facts.columns.find((c) => c.name === name);
  if (!found) throw new Error(`column ${name} is missing from the plan's recorded facts`);
  return found;
}

/** The declared `unique` of one new column as a list (empty when none). */
export function declaredUnique(field: string, column: string, unique: boolean | { with: string[] } | undefined): DeclaredUnique[] {
  return unique ? [{ field, column, with: typeof unique === 'object' ? unique.with : [] }] : [];
}

/** Types `plan new` knows how to split and join as text. */
export const TEXTUAL = /^(text|character varying(\(\d+\))?|varchar(\(\d+\))?)$/;
