import type { ColumnFacts, SchemaModel } from './schema.js';
import type { TableRef } from './ast.js';
import type { ConstrainSuggestion } from './constrain.js';
import type { IndexSuggestion } from './index-plan.js';

/** What `detect` found unsafe, and what to do instead. */
export type FindingRule =
  | 'rename-column'
  | 'rename-table'
  | 'rename-type'
  | 'drop-column'
  | 'drop-table'
  | 'drop-add-rename'
  | 'drop-add-retype'
  | 'retype-rewrite'
  | 'add-column-rewrite'
  | 'add-column-required'
  | 'set-not-null'
  | 'index-not-concurrent'
  | 'constraint-validated'
  | 'constraint-builds-index'
  | 'validate-same-transaction'
  | 'update-under-lock';

/** A change pgshift can run instead, as detected: only kinds that exist (see src/changes/kinds/registry.ts). */
export type ColumnChangeSuggestion =
  | { readonly kind: 'rename'; readonly table: TableRef; readonly column: string; readonly to: string }
  | { readonly kind: 'retype'; readonly table: TableRef; readonly column: string; readonly to: string; readonly using: string | undefined }
  | { readonly kind: 'drop'; readonly table: TableRef; readonly column: string }
  | ConstrainSuggestion
  | {
      readonly kind: 'add';
      readonly table: TableRef;
      readonly column: string;
      readonly type: string;
      readonly notNull: boolean;
      /** The value every row gets, when the statement gave one pgshift can stand behind; else a placeholder. */
      readonly value: string | undefined;
      /** The value is also the default new code's inserts keep. */
      readonly keepDefault: boolean;
    }
  | IndexSuggestion
  | { readonly kind: 'rename-table'; readonly table: TableRef; readonly to: string };

/** One unsafe statement. */
export interface Finding {
  readonly file: string;
  readonly line: number;
  readonly rule: FindingRule;
  /** The table (or type) it changes, as written (`schema.table` or `table`). */
  readonly table: string;
  /** Why it breaks running code or takes a long lock. */
  readonly why: string;
  /** What to do instead. */
  readonly fix: string;
  /** The pgshift plan that replaces it, for the column and index changes pgshift handles. */
  readonly change?: ColumnChangeSuggestion | undefined;
}

/** Builds a finding at the statement's line. */
export type At = (rule: FindingRule, table: TableRef | string, why: string, fix: string, change?: Finding['change']) => Finding;

/** A column dropped from an existing table, waiting for the end of the file to tell a drop from half a rename or retype. */
export interface DroppedColumn {
  readonly table: TableRef;
  readonly key: string;
  readonly column: string;
  readonly line: number;
  /** Its definition before the drop, when an earlier statement or file gave it. */
  readonly facts: ColumnFacts | undefined;
}

/** A column added to an existing table. */
export interface AddedColumn {
  readonly key: string;
  readonly column: string;
  /** Its type as `typeText` prints it. */
  readonly type: string | undefined;
}

/**
 * The transaction a statement runs in. A file is taken to run as one
 * transaction, as Prisma, golang-migrate (one multi-statement Exec), diesel
 * and drizzle's migrator run it; an explicit COMMIT or ROLLBACK ends it and
 * the statements after it start the next one. BEGIN does not split it: in
 * one multi-statement query, statements before it join its block.
 */
export interface TransactionState {
  /** `table.constraint` added NOT VALID in this transaction. */
  readonly notValid: Set<string>;
  /** Tables this transaction holds a lock on that blocks writes (an ALTER TABLE, a CREATE INDEX, a LOCK TABLE), until it ends. */
  readonly writeLocked: Set<string>;
}

/** What one file has said so far, to judge the statements after. */
export interface FileState {
  /** The tables across the files read, in order. */
  readonly schema: SchemaModel;
  /** Tables, views and materialized views the file itself creates: no running code uses them yet. */
  readonly created: Set<string>;
  /** Types the file itself creates. */
  readonly createdTypes: Set<string>;
  /** CHECK (col IS NOT NULL) constraints added NOT VALID, by name, with their table and column. */
  readonly pendingChecks: Map<string, { table: string; column: string }>;
  /** `table.column` proved NOT NULL by a valid CHECK: a later SET NOT NULL needs no scan. */
  readonly provedNotNull: Set<string>;
  readonly dropped: DroppedColumn[];
  readonly added: AddedColumn[];
  /**
   * Tables and types renamed away, by their old key: reported at the end of
   * the file unless an object the file created takes the old name (a swap,
   * as Prisma changes an enum: old code keeps finding the name).
   */
  readonly renamedAway: Map<string, Finding>;
  tx: TransactionState;
}

export function newTransaction(): TransactionState {
  return { notValid: new Set(), writeLocked: new Set() };
}

export const shown = (t: TableRef): string => (t.schema ? `${t.schema}.${t.name}` : t.name);

/** A column name as SQL: quoted unless it is a plain lowercase identifier. */
export const ident = (name: string): string => (/^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`);
