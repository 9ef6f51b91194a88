import { runBackfill } from '../backfill/backfill.js';
import type { BackfillProgress } from '../backfill/input.js';
import { purgeSteps } from '../changes/archive.js';
import { createIndexConcurrently } from '../changes/constraints.js';
import type { ColumnChange, PlanFacts } from '../changes/model.js';
import type { ObjectNames } from '../changes/sql-objects.js';
import type { ArchivedColumn, RecordArchiveStep, RestoreIndexesStep } from '../changes/steps.js';
import { DEFAULT_CONTRACT_KEEP_MS } from '../defaults.js';
import type { RunContext } from '../guard/context.js';
import type { StateStore } from '../state/store.js';
import type { BackfillInput } from '../backfill/input.js';
import { runSqlStep } from './sql-step.js';

/** Record what contract archived; with `contract.keep: 0`, purge it at once. */
export async function recordArchive(input: BackfillInput, step: RecordArchiveStep): Promise<string> {
  const keepMs = input.plan.contract?.keepMs ?? DEFAULT_CONTRACT_KEEP_MS;
  await input.store.recordArchive(input.plan.name, step.columns, keepMs);
  if (keepMs > 0) return 'recorded';
  await purgeArchive(input.ctx, input.store, input.plan.name, input.facts, step.columns);
  return 'purged (contract.keep is 0)';
}

/** Drop the archived columns and record it: contract can no longer be rolled back. */
export async function purgeArchive(ctx: RunContext, store: StateStore, plan: string, facts: PlanFacts, columns: readonly ArchivedColumn[]): Promise<void> {
  for (const step of purgeSteps(facts.table, columns, facts.views)) await runSqlStep(ctx, step);
  await store.markPurged(plan);
}

/**
 * The change seen from the other side: the new columns are read, the old
 * ones written, each through its `reverse` function. The backfill walks it
 * as it walks the forward change: keyset batches, only rows whose old side
 * is not what `reverse` gives, a checkpoint per batch.
 */
function reversed(change: ColumnChange, names: ObjectNames): { change: ColumnChange; names: ObjectNames } {
  return {
    change: {
      old: change.new.map((c) => ({ name: c.name, type: c.type, notNull: false, default: null, reverse: c.forward })),
      new: change.old.map((c) => ({
        name: c.name,
        type: c.type,
        collation: null,
        forward: c.reverse,
        notNull: false,
        default: null,
        defaultFrom: 'switch-read' as const,
        unique: false,
      })),
    },
    names: { ...names, forward: names.reverse, reverse: names.forward },
  };
}

/**
 * contract's rollback: the old columns of every row from `reverse`, where
 * they disagree with the new ones: a row inserted since contract (its old
 * columns NULL), or one whose new columns new code changed since (they are
 * no longer what `using` gives from the archived values). A row nobody
 * touched keeps its archived values, even where `reverse` would not give them
 * back exactly. The forward backfill's checkpoint is forgotten when the
 * refill starts (the archive row says it has), so a refill killed part-way
 * resumes from its own.
 */
export async function refillOld(input: BackfillInput): Promise<BackfillProgress> {
  const archive = await input.store.archive(input.plan.name);
  if (!archive?.refilling) {
    await input.store.resetBackfill(input.plan.name);
    await input.store.markRefilling(input.plan.name);
  }
  return runBackfill({ ...input, ...reversed(input.change, input.names), onlyDiffering: true });
}

const INDEX_DEFINITION = /^CREATE (UNIQUE )?INDEX ("(?:[^"]|"")*"|[^\s"]+) ON (.*)$/s;

/**
 * contract's rollback: the indexes contract dropped on the old columns,
 * each built again by `CREATE INDEX CONCURRENTLY` (SHARE UPDATE EXCLUSIVE:
 * reads and writes go on; an INVALID leftover of an interrupted build is
 * dropped first; a valid index of the name is taken as built).
 */
export async function restoreIndexes(input: BackfillInput, step: RestoreIndexesStep): Promise<number> {
  const archive = await input.store.archive(input.plan.name);
  let built = 0;
  for (const definition of archive?.indexes ?? []) {
    const m = INDEX_DEFINITION.exec(definition);
    if (!m) throw new Error(`cannot read the recorded index definition ${definition}`);
    const quoted = m[2]!;
    const name = quoted.startsWith('"') ? quoted.slice(1, -1).replaceAll('""', '"') : quoted;
    const create = `CREATE ${m[1] ?? ''}INDEX CONCURRENTLY IF NOT EXISTS ${quoted} ON ${m[3]!}`;
    if ((await runSqlStep(input.ctx, createIndexConcurrently({ schema: step.table.schema, name }, create, `index ${name}`))) === 'ran') built++;
  }
  return built;
}
