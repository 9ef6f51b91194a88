import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { column, readTableFacts, resolveTable, type ColumnFacts } from '../db/catalog.js';
import type { QualifiedName } from '../db/ident.js';
import {
  DEFAULT_ABANDONED_SLOT_AFTER_MS,
  DEFAULT_BATCH_SIZE,
  DEFAULT_LOCK_TIMEOUT_MS,
  DEFAULT_MAX_REPLICA_LAG_MS,
  DEFAULT_PAUSE_MS,
  DEFAULT_RETRIES,
  DEFAULT_MAX_WAIT_MS,
  DEFAULT_STATEMENT_TIMEOUT_MS,
  DEFAULT_TARGET_BATCH_MS,
} from '../defaults.js';
import { PlanError } from '../errors.js';
import { planName } from '../detect/suggest.js';
import { checkAgainstCatalog } from '../plan/catalog-check.js';
import { parsePlan, splitTableName } from '../plan/load.js';
import { kindNamed, type ChangeKind } from '../changes/kinds/registry.js';
import type { Proposed } from '../changes/kinds/kind.js';
import { PLACEHOLDER } from '../plan/schema.js';
import { withState, type RunOptions } from './session.js';

/** What `plan new` is asked for: a kind, `table.column` (merge: `table.a,b`) and the kind's targets. */
export interface NewPlanRequest {
  readonly kind: ChangeKind;
  /** `[schema.]table.column`, or `[schema.]table.col1,col2` for merge. */
  readonly source: string;
  /** rename: the new name; split: the new columns; merge: the new column; retype: the new type. */
  readonly targets: readonly string[];
  /** Where to write the file (default `plans`). */
  readonly dir?: string | undefined;
  /** The plan's name (default from kind, table and column). */
  readonly name?: string | undefined;
}

/** The file `plan new` wrote. */
export interface NewPlanResult {
  readonly plan: string;
  readonly file: string;
  /** Fields left as placeholders for a person to write; `lint` refuses the plan until they are. */
  readonly placeholders: readonly string[];
}

/**
 * Write a plan file for a change, from the live catalog: the types are the
 * columns' own, `using` and `reverse` are proposed where pgshift can (none
 * for a rename; casts both ways for a retype the server accepts; a split on
 * the first space, or a join with one, between text columns), and every
 * default is spelled out with a comment. A column pgshift cannot change is
 * refused with the reason (exit 2), and nothing is written.
 */
export async function newPlan(request: NewPlanRequest, options: RunOptions = {}): Promise<NewPlanResult> {
  // A kind that changes the table itself (rename-table) is given the table alone, and its plan is named after the target too.
  const wholeTable = kindNamed(request.kind).source === 'table';
  const { table: tableText, columns } = wholeTable ? { table: request.source, columns: [] } : splitSource(request.source);
  return withState(options, async (client, store) => {
    const table = await resolveTable(client, splitTableName(tableText));
    if (!table) throw new PlanError([{ file: '', path: 'table', message: `table "${tableText}" does not exist (or is not a table)` }]);
    const facts = await readTableFacts(client, table);
    // A kind that adds the column it names finds it taken in the catalog check below, with the reason.
    const old = kindNamed(request.kind).namesNewColumn
      ? []
      : columns.map((name) => {
          const c = column(facts, name);
          if (!c) throw new PlanError([{ file: '', path: 'column', message: `column "${name}" does not exist in ${tableText}` }]);
          return c;
        });
    const name = request.name ?? planName(request.kind, table.name, ...columns, ...(wholeTable ? request.targets : []));
    const file = path.join(request.dir ?? 'plans', `${name}.yaml`);
    let change = propose(request, columns, old);
    // Check what would be written, placeholders standing for typed NULLs, so a refusal names its reason now.
    const check = async (c: Record<string, unknown>): Promise<PlanError | null> => {
      const plan = parsePlan(
        render(name, table, c, (e, type) => e ?? `NULL::${type}`),
        file,
      );
      return checkAgainstCatalog(client, plan, store.schema).then(
        () => null,
        (error: unknown) => (error instanceof PlanError ? error : Promise.reject(error)),
      );
    };
    let refusal = await check(change);
    if (refusal && request.kind === 'retype' && refusal.problems.every((p) => /^retype\.(using|reverse)$/.test(p.path))) {
      // The server has no cast for one direction: leave it to a person.
      change = propose(request, columns, old, false);
      refusal = await check(change);
    }
    if (refusal) {
      throw new PlanError(refusal.problems.map((p) => ({ ...p, file: '', message: `pgshift cannot make this change: ${p.message}` })));
    }
    const placeholders: string[] = [];
    const text = render(name, table, change, (e, _type, field) => e ?? (placeholders.push(field), `${PLACEHOLDER} write this expression`));
    await writeFile(file, text, { flag: 'wx' }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') throw new PlanError([{ file, path: '', message: 'already exists; pick another --name or remove the file' }]);
      throw error;
    });
    return { plan: name, file, placeholders };
  });
}

function splitSource(source: string): { table: string; columns: string[] } {
  const cut = source.lastIndexOf('.');
  if (cut <= 0) throw new PlanError([{ file: '', path: 'source', message: `"${source}" must be table.column (or schema.table.column)` }]);
  return {
    table: source.slice(0, cut),
    columns: source
      .slice(cut + 1)
      .split(',')
      .filter(Boolean),
  };
}

/** The kind's part of the plan file, expressions proposed where the kind can (see `ChangeKindModule.propose`). */
function propose(r: NewPlanRequest, named: readonly string[], old: readonly ColumnFacts[], castBack = true): Record<string, unknown> {
  const kind = kindNamed(r.kind);
  return { [kind.name]: kind.propose({ targets: r.targets, named, old, castBack }) };
}

const isProposed = (v: unknown): v is Proposed => typeof v === 'object' && v !== null && 'sql' in v && 'type' in v && Object.keys(v).length === 2;

/** The plan file: header, change, and every default spelled out with its meaning. */
function render(
  name: string,
  table: QualifiedName,
  change: Record<string, unknown>,
  fill: (sql: string | null, type: string, field: string) => string,
): string {
  const resolve = (value: unknown, field: string): unknown => {
    if (isProposed(value)) return fill(value.sql, value.type, field);
    if (Array.isArray(value)) return value.map((v, i) => resolve(v, `${field}[${i}]`));
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, field ? `${field}.${k}` : k)]));
    return value;
  };
  const part = (p: string): string => (p.includes('.') ? `"${p}"` : p);
  return [
    `# Written by \`migrate plan new\`. Check the expressions, then: migrate plan lint ${name} && migrate plan show ${name}`,
    stringify({ plan: name, table: `${part(table.schema)}.${part(table.name)}`, ...(resolve(change, '') as object) }).trimEnd(),
    'backfill:',
    `  batch_size: ${DEFAULT_BATCH_SIZE}         # rows in the first batch; the size then adapts (default)`,
    `  pause: ${duration(DEFAULT_PAUSE_MS)}               # sleep between batches (default)`,
    `  target_batch_ms: ${DEFAULT_TARGET_BATCH_MS}      # each batch aims at this duration; 0 keeps batch_size (default)`,
    `  max_replica_lag: ${duration(DEFAULT_MAX_REPLICA_LAG_MS)}    # wait while a replica lags more than this; 0 = off (default)`,
    `  max_slot_lag: 0            # wait while a logical slot is more than this behind, e.g. 1GB; 0 = off (default)`,
    `  abandoned_slot_after: ${duration(DEFAULT_ABANDONED_SLOT_AFTER_MS)} # an inactive slot unmoved this long is named and ignored; 0 = never (default)`,
    `  max_wal_rate: 0            # average WAL bytes per second, e.g. 16MB/s; 0 = off (default)`,
    `  max_active_sessions: 0     # wait while more non-pgshift sessions than this are active; 0 = off (default)`,
    `  # throttle_query: "SELECT ..." # your SQL, run as the runner between batches: true = wait`,
    'guards:',
    `  lock_timeout: ${duration(DEFAULT_LOCK_TIMEOUT_MS)}       # each attempt's lock wait: the most a query queues behind pgshift (default)`,
    `  max_wait: ${duration(DEFAULT_MAX_WAIT_MS)}           # how long a step waits in all for its locks, then exit 3 (default)`,
    `  statement_timeout: ${duration(DEFAULT_STATEMENT_TIMEOUT_MS)}   # how long one statement may run (default)`,
    `  retries: ${DEFAULT_RETRIES}              # backfill: attempts after the first when rows stay locked (default)`,
    '',
  ].join('\n');
}

function duration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
