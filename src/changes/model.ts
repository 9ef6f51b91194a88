import type { ColumnFacts } from '../db/catalog.js';
import type { QualifiedName } from '../db/ident.js';
import type { CarryOver } from './carry-over.js';
import type { DependentView } from './dependent-views.js';
import type { Partitioning } from '../db/partitions.js';

/**
 * Facts about the table captured when a plan starts and stored with its
 * state, so every later phase (and every rollback) compiles the same SQL even
 * after the table has changed under the plan. A kind adds facts of its own
 * (see `ChangeKindModule.learn`).
 */
export interface PlanFacts {
  readonly table: QualifiedName;
  /** Every column of the table as it was before `expand`. */
  readonly columns: readonly ColumnFacts[];
  /** Key columns with their types, for keyset batches. */
  readonly key: readonly { readonly name: string; readonly type: string }[];
  /** The search_path user expressions are resolved with (the runner's, at start). */
  readonly searchPath: string;
  /** Canonical `format_type` text of each new column's declared type, by column name. */
  readonly newTypes: Readonly<Record<string, string>>;
  /** Schema holding pgshift's state and generated functions. */
  readonly stateSchema: string;
  /** `server_version_num` at start. */
  readonly serverVersion: number;
  /** rename: the indexes, constraints, sequences and comment carried to the new column (absent in plans started before it existed). */
  readonly carry?: CarryOver | undefined;
  /**
   * The expressions as PostgreSQL printed them at start, names qualified, for
   * a trigger that calls nothing (absent in plans started before it existed,
   * or when it could not be made: the trigger then calls the expression functions).
   */
  readonly inline?: InlinedExpressions | undefined;
  /** retype: whether PostgreSQL changes the type in place, without rewriting the table or its indexes. */
  readonly retype?: RetypeFacts | undefined;
  /** Views and materialized views that read an old column, redefined over the new ones at stop-write. */
  readonly views?: readonly DependentView[] | undefined;
  /** A partitioned table: its partitions, so indexes are built per partition (absent for a plain table). */
  readonly partitioning?: Partitioning | undefined;
}

/** What a retype probe found at plan start. */
export interface RetypeFacts {
  /** `ALTER COLUMN … TYPE … USING using` rewrites nothing: one catalog-only statement replaces the six phases. */
  readonly metadataOnly: boolean;
  /** Going back with `reverse` rewrites nothing either, so expand can be rolled back the same way. */
  readonly reverseMetadataOnly: boolean;
  /** Why the full copy is used instead, for `plan show`. */
  readonly reason: string;
  /**
   * Indexes and constraints on the old column that a copy does not carry
   * (they were written for the old type) and contract drops with it; `plan
   * show` names them so they can be declared or created again.
   */
  readonly notCarried?: readonly string[] | undefined;
}

/** An existing column the change replaces, with the expression that derives it from the new ones. */
export interface OldColumn {
  readonly name: string;
  readonly type: string;
  readonly notNull: boolean;
  readonly default: string | null;
  /** SQL over the new columns' names giving this column's value. */
  readonly reverse: string;
}

/** A column the change adds, with the expression that derives it from the old ones. */
export interface NewColumn {
  readonly name: string;
  readonly type: string;
  readonly collation: string | null;
  /** SQL over the old columns' names giving this column's value. */
  readonly forward: string;
  /** Enforced in `switch-read` (rename: carried from the old column). */
  readonly notNull: boolean;
  /** Set from `expand` for a rename (carried), from `switch-read` when declared. */
  readonly default: string | null;
  readonly defaultFrom: 'expand' | 'switch-read';
  readonly unique: boolean;
  /** Existing columns the unique index also covers (`unique: { with: [...] }`), after the column. */
  readonly uniqueWith?: readonly string[] | undefined;
  /** The parameter name of this column in the reverse functions (retype: the old column's name); default `name`. */
  readonly exprName?: string | undefined;
  /**
   * The columns `forward` reads, when they are not the old columns (an `add`
   * reads other columns of the row, which the plan keeps): the forward
   * function's parameters, in order, with the types they are declared with.
   */
  readonly reads?: readonly { readonly name: string; readonly type: string }[] | undefined;
  /**
   * The column is given `forward`'s value once, where it is NULL, and never
   * derived again (`add`: its value may be volatile, like a fresh uuid): a
   * row is stale while the column is NULL, whatever `forward` gives now.
   */
  readonly filledOnce?: boolean | undefined;
}

/**
 * Every change kind reduces to this: old columns derived from new ones and
 * new columns derived from old ones. The six phases are compiled from it.
 */
export interface ColumnChange {
  readonly old: readonly OldColumn[];
  readonly new: readonly NewColumn[];
}

/** A SQL expression a plan author wrote, with where it was written, for error messages. */
export interface AuthoredExpression {
  readonly field: string;
  readonly sql: string;
  /** Names of the columns the expression may use: the old side, the new side, or every column of the table (`row`). */
  readonly over: 'old' | 'new' | 'row';
  /** The column whose value it gives. */
  readonly gives: string;
}

/** What a change kind needs from the catalog before it can resolve. */
export interface ChangeOutline {
  /** Columns that must exist (the old side). */
  readonly reads: readonly string[];
  /** Columns that must not exist yet, with their declared type text (null = same as the old column). */
  readonly adds: readonly {
    readonly name: string;
    readonly type: string | null;
    readonly field: string;
    /** The name expressions over the new side use for it (retype: the old column's name); default `name`. */
    readonly exprName?: string | undefined;
    /** The field its name was written in, for messages about the name; default `field` with `.type` made `.name`. */
    readonly nameField?: string | undefined;
  }[];
  readonly expressions: readonly AuthoredExpression[];
}

/**
 * The change's expressions as PostgreSQL itself printed them, every name
 * outside pg_catalog schema-qualified, captured at plan start (after their
 * objects' owners were checked: plan/expression-owners.ts). The trigger
 * body and the expression functions are built from them, and everything
 * that evaluates them runs under `search_path = pg_catalog, pg_temp`, where
 * the unqualified names are pg_catalog's: what each name means was fixed
 * when the plan started, whatever a session's search_path says later or
 * whatever is planted since. The trigger calls no function of pgshift's but
 * the gate's, so any role that may write the table can run it.
 */
export interface InlinedExpressions {
  /** Block label the printed expressions may qualify their parameters with (`<label>.<column>`). */
  readonly label: string;
  /** Parameter type of each old column (forward expressions' variables), as printed with an empty search_path. */
  readonly oldTypes: readonly string[];
  /** Parameter type of each new column, by `exprName` (reverse expressions' variables). */
  readonly newTypes: readonly string[];
  /** One expression per new column, over variables named after the old columns. */
  readonly forward: readonly string[];
  /** One expression per old column, over variables named after the new columns' `exprName`. */
  readonly reverse: readonly string[];
  /** The old columns' defaults (two-way-defaults mode), or null. */
  readonly oldDefaults: readonly (string | null)[];
  /**
   * `forward` printed over the trigger's row (`new.<old column>`), so the
   * trigger needs no block of variables to evaluate it; absent in plans
   * started before it was captured, or when PostgreSQL's text could not be
   * read back exactly.
   */
  readonly forwardOnNew?: readonly string[] | undefined;
  /** `reverse` over `new.<new column>`; also absent when a new column's expressions name it otherwise (a retype). */
  readonly reverseOnNew?: readonly string[] | undefined;
  /**
   * One trigger and one function per event, INSERT and UPDATE, so neither
   * body asks `TG_OP`; absent in plans started before, which keep one
   * trigger for both.
   */
  readonly perEvent?: boolean | undefined;
  /**
   * The expression functions are SQL-standard bodies of these texts, created
   * under `search_path = pg_catalog, pg_temp` (names bound at CREATE), and the
   * statements that call them run under that path (issue 19). Absent in plans
   * started before: their functions, made at dual-write, parse the text as
   * written when called, so they keep the plan's search_path.
   */
  readonly bound?: boolean | undefined;
}
