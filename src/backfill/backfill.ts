import { setTimeout as sleep } from 'node:timers/promises';
import { ident, literal, qualified, type QualifiedName } from '../db/ident.js';
import type { PlanFacts } from '../changes/model.js';
import { connect, connectSpare, withRolledBackTransaction, withTransaction, type Client } from '../db/client.js';
import type { Guards } from '../plan/types.js';
import { withGuards } from '../guard/guards.js';
import { readPartitioning } from '../db/partitions.js';
import { StateStore, type BackfillPartition, type BackfillState } from '../state/store.js';
import { VERSION } from '../version.js';
import { recordMetric } from '../telemetry.js';
import { ANALYZE_LOCK_WAIT_MS, SPARE_CONNECTION_WAIT_MS } from '../defaults.js';
import { batchGuards, runBatchWithRetries } from './batch.js';
import { BatchEnds } from './bounds.js';
import { BatchSizer } from './batch-size.js';
import { keyAsText, keyOrder, partitionId, rangeWhere, readKey, upperKeySql, type KeyValue } from './keyset.js';
import { ReplicaLagProbe, waitForReplicas } from './throttle.js';
import { Steering } from './steering.js';
import { Throttles } from './throttles.js';
import { bypassRefusal, triggerBypass } from './trigger-bypass.js';
import { defaultWorkers, readServerFacts } from './default-workers.js';

import { enterPlanTransaction, planTransactionSettings } from './plan-transaction.js';
export type { BackfillInput, BackfillProgress, Segment } from './input.js';
import type { BackfillInput, BackfillProgress, Segment } from './input.js';

/** How often, at most, the walk asks how far replicas lag (before a batch). */
const REPLICA_RECHECK_MS = 1_000;

/**
 * Fill the new columns of every row up to the upper key fixed at the start,
 * one keyset batch per transaction, each sized to take about
 * `backfill.target_batch_ms`. Rows written after the start are kept in sync
 * by the trigger, so the walk always ends however fast inserts come. The
 * checkpoint commits with its batch: a killed runner resumes exactly there,
 * neither skipping nor repeating a committed batch. Between batches it
 * pauses and waits for lagging replicas (ANALYZE runs beside the final
 * check: `withAnalyzeBeside`).
 *
 * A partitioned table is walked one leaf partition at a time, each on its
 * own key index up to its own upper key; the checkpoint names the partition
 * it is in, and the batch that finishes a partition moves it to the start of
 * the next one.
 *
 * With `backfill.workers` > 1, the rows are cut at the start into disjoint
 * key ranges: a plain table's keys into that many ranges of about as many
 * rows, a partitioned table into its non-empty leaf partitions. That many
 * connections walk them at once, each taking the next range when it is done
 * with one, with its own checkpoint per range, batch size, pauses and replica
 * waits, exactly as one runner walks the whole; a resumed run picks every
 * unfinished range up where its checkpoint is.
 */
export async function runBackfill(given: BackfillInput): Promise<BackfillProgress> {
  const input = await withDefaultWorkers(await withTriggerBypass(given));
  const { ctx, store, plan, facts } = input;
  const log = ctx.log;
  let state = await store.backfill(plan.name);
  const fresh = !state;
  if (!state) {
    await startBackfill(input);
    state = (await store.backfill(plan.name))!;
  }
  const ranges = await store.ranges(plan.name);
  const open = ranges.filter((r) => !r.finished);
  const workers = Math.max(1, Math.min(workersOf(input), open.length));
  const alongside = input.alongside ?? [];
  if (alongside.length && (state.partitions || ranges.length))
    throw new Error(`backfill of ${plan.name}: plans walked alongside need a single walk of a plain table`);
  const together = alongside.length ? ` together with ${alongside.map((p) => p.plan.name).join(', ')} (one walk)` : '';
  if (fresh) {
    const where = state.partitions
      ? `${state.partitions.length} partitions, ${ranges.length ? `${workers} at a time, one worker each` : 'one at a time'}`
      : `up to key ${state.upperKey?.join(', ') ?? '(empty table)'}${ranges.length ? ` in ${ranges.length} key ranges, one worker each` : ''}`;
    log.info(
      { upperKey: state.upperKey, partitions: state.partitions, ranges, rowsEstimated: state.rowsEstimated },
      `backfill of ${plan.name}${together} ${where} (~${state.rowsEstimated} rows)`,
    );
  } else if (!state.finishedAt && ranges.length) {
    log.info(
      { ranges: open, rowsDone: state.rowsDone, rowsEstimated: state.rowsEstimated },
      `resuming ${plan.name} backfill with ${workers} workers at keys ${open
        .map((r) => `${r.partition ? `${r.partition} ` : ''}${(r.lastKey ?? r.lowerKey)?.join(', ') ?? '(start)'}`)
        .join('; ')} (${state.rowsDone} of ~${state.rowsEstimated} rows done)`,
    );
  } else if (!state.finishedAt) {
    log.info(
      { partition: state.partition, lastKey: state.lastKey, rowsDone: state.rowsDone, rowsEstimated: state.rowsEstimated, batchSize: state.batchSize },
      `resuming ${plan.name} backfill${together} ${state.partition ? `in partition ${state.partition} ` : ''}at key ${state.lastKey ? state.lastKey.join(', ') : '(start)'} (${state.rowsDone} of ~${state.rowsEstimated} rows done)`,
    );
  }
  const segments: (Segment & { readonly from: KeyValue | null })[] = ranges.length
    ? (state.finishedAt ? [] : open).map((r) => ({
        table: rangeTable(facts.table, state, r.partition),
        upper: r.upperKey,
        id: r.partition,
        worker: r.worker,
        from: r.lastKey ?? r.lowerKey,
      }))
    : remainingSegments(facts.table, state).map((segment, i) => ({ ...segment, from: i === 0 ? state.lastKey : null }));
  const tracker = new ProgressTracker(input, state, segments.length === 0);
  const steering = new Steering(plan.name, plan.backfill, log);
  // One for all workers: the slot, WAL, session and query throttles bound what the backfill does in all.
  const throttles = new Throttles(plan.backfill, log, (w) => tracker.waiting(w));
  if (tracker.progress.done) {
    if (!state.finishedAt) for (const p of [input, ...alongside]) await store.finishBackfill(p.plan.name);
    input.onProgress?.(tracker.progress);
    return tracker.progress;
  }
  input.onProgress?.(tracker.progress);
  // Open the connection that asks who holds a row a batch waits for now, not at the first wait: a batch waits
  // about one batch long, and a connection opened then on a busy server could come after the wait has ended.
  void ctx.monitor().catch(() => undefined);
  if (ranges.length) {
    await runWorkers(input, state, segments, workers, tracker, steering, throttles);
  } else {
    const sizer = new BatchSizer(state.batchSize, plan.backfill.targetBatchMs, plan.guards.statementTimeoutMs);
    const lagProbe = new ReplicaLagProbe(ctx.client);
    const ends = await openBatchEnds(input, sizer, `pgshift bounds ${VERSION}`);
    try {
      for (const segment of segments) {
        await walk(input, segment, segment.from, sizer, lagProbe, tracker, ends, steering, throttles);
      }
    } finally {
      await ends.close();
    }
  }
  for (const p of [input, ...alongside]) await store.finishBackfill(p.plan.name);
  tracker.finished();
  return tracker.progress;
}

/**
 * The input with the batches' trigger bypass when the runner may set
 * `session_replication_role` (trigger-bypass.ts); says which path the
 * batches take and why.
 */
async function withTriggerBypass(input: BackfillInput): Promise<BackfillInput> {
  const { ctx, change, names, facts } = input;
  const refusal = await bypassRefusal(ctx.client, facts.table, change, names, facts);
  if (refusal) {
    ctx.log.info({ refusal }, `backfill batches go through the sync trigger: ${refusal}`);
    return { ...input, bypass: null };
  }
  ctx.log.info('backfill batches skip the sync trigger (session_replication_role = replica in their transactions)');
  return { ...input, bypass: triggerBypass(change, names, facts) };
}

/**
 * The input with `backfill.workers` decided from the server when the plan
 * does not set it (default-workers.ts), and said in the log.
 */
async function withDefaultWorkers(input: BackfillInput): Promise<BackfillInput> {
  const { ctx, plan } = input;
  if (plan.backfill.workers !== null) return input;
  const { workers, why } = defaultWorkers(await readServerFacts(ctx.client, input.facts.table));
  ctx.log.info({ workers }, `backfill.workers not set: ${workers} worker${workers === 1 ? '' : 's'} (${why})`);
  return { ...input, plan: { ...plan, backfill: { ...plan.backfill, workers } } };
}

/** The workers a backfill walks with, once `withDefaultWorkers` has decided. */
function workersOf(input: BackfillInput): number {
  return input.plan.backfill.workers ?? 1;
}

/** Rows done across every segment and worker, reported after every batch. */
class ProgressTracker {
  progress: BackfillProgress;
  private readonly startedAt = performance.now();
  private readonly doneAtStart: number;
  /** When the current throttle wait began (performance.now()), for its metric; null while walking. */
  private waitingSince: number | null = null;
  readonly hiddenLagWarned = { value: false };

  constructor(
    private readonly input: BackfillInput,
    state: BackfillState,
    nothingLeft: boolean,
  ) {
    this.doneAtStart = state.rowsDone;
    this.progress = {
      plan: input.plan.name,
      rowsDone: state.rowsDone,
      rowsTotal: Math.max(state.rowsEstimated, state.rowsDone),
      batchSize: state.batchSize,
      lastKey: state.lastKey,
      partition: state.partition,
      done: state.finishedAt !== null || nothingLeft,
      rowsPerSecond: 0,
      etaSeconds: null,
      waiting: null,
    };
  }

  batch(rows: number, end: KeyValue, segment: Segment, batchSize: number): void {
    const rowsDone = this.progress.rowsDone + rows;
    const rate = (rowsDone - this.doneAtStart) / Math.max((performance.now() - this.startedAt) / 1000, 1e-3);
    const rowsTotal = Math.max(this.progress.rowsTotal, rowsDone);
    this.progress = {
      ...this.progress,
      rowsDone,
      rowsTotal,
      batchSize,
      lastKey: end,
      partition: segment.id,
      rowsPerSecond: rate,
      etaSeconds: rate > 0 ? Math.max(0, rowsTotal - rowsDone) / rate : null,
      waiting: null,
    };
    const attributes = { plan: this.input.plan.name };
    recordMetric('backfillRows', rows, attributes);
    recordMetric('backfillRate', rate, attributes);
    this.endWait();
    this.input.onProgress?.(this.progress);
  }

  waiting(reason: string | null): void {
    if (reason && this.waitingSince === null) this.waitingSince = performance.now();
    if (!reason) this.endWait();
    this.input.onProgress?.({ ...this.progress, waiting: reason });
  }

  /** A wait ends with its say-so (`waiting(null)`) or, for a pause that said nothing more, with the next batch. */
  private endWait(): void {
    if (this.waitingSince === null) return;
    recordMetric('throttleWait', performance.now() - this.waitingSince, { plan: this.input.plan.name });
    this.waitingSince = null;
  }

  finished(): void {
    this.progress = { ...this.progress, done: true, etaSeconds: 0, waiting: null };
    this.input.onProgress?.(this.progress);
  }
}

/**
 * Walk one segment from `lower` (exclusive; null = its first key) to its
 * upper key, batch after batch, each committed with its checkpoint; between
 * batches, wait for lagging replicas and the other throttles, and pause. `stop` is asked before each
 * batch (another worker failed).
 */
async function walk(
  input: BackfillInput,
  segment: Segment,
  from: KeyValue | null,
  sizer: BatchSizer,
  lagProbe: ReplicaLagProbe,
  tracker: ProgressTracker,
  ends: BatchEnds,
  steering: Steering,
  throttles: Throttles,
  stop: () => boolean = () => false,
  worker = 0,
): Promise<'done' | { readonly handedBackAt: KeyValue | null }> {
  const { ctx, plan } = input;
  if (segment.id)
    ctx.log.info(
      { partition: segment.id, upperKey: segment.upper },
      `backfill of ${plan.name}: partition ${segment.id}${from ? ` from key ${from.join(', ')}` : ''}`,
    );
  let lower = from;
  let replicasCheckedAt = -Infinity;
  for (;;) {
    if (stop()) return 'done';
    const steered = await steering.beforeBatch(
      input.store,
      worker,
      () => ctx.stillHeld?.(),
      (w) => tracker.waiting(w),
    );
    if (steered === 'yield') return { handedBackAt: lower };
    if (stop()) return 'done';
    if (steered.targetBatchMs !== sizer.targetMs) sizer.retarget(steered.targetBatchMs);
    const maxLag = steered.maxReplicaLagMs;
    // Replicas are asked before a batch, at most once per REPLICA_RECHECK_MS: a lag takes longer than that to matter.
    if (maxLag !== null && maxLag > 0 && performance.now() - replicasCheckedAt >= REPLICA_RECHECK_MS) {
      await waitForReplicas(lagProbe, maxLag, ctx.log, (waiting) => tracker.waiting(waiting), tracker.hiddenLagWarned);
      replicasCheckedAt = performance.now();
    }
    const walFrom = await throttles.beforeBatch(ctx.client, () => ctx.stillHeld?.());
    ctx.stillHeld?.();
    const batchStarted = performance.now();
    const batch = await runBatchWithRetries(input, sizer, segment, lower, ends);
    const committedMs = performance.now() - batchStarted;
    await throttles.afterBatch(ctx.client, walFrom);
    ctx.log.debug(
      {
        rows: batch.rows,
        written: batch.written,
        ms: batch.ms,
        boundMs: batch.boundMs,
        updateMs: batch.updateMs,
        ahead: batch.ahead,
        committedMs,
        next: sizer.size,
        end: batch.end,
        partition: segment.id,
        worker: segment.worker,
      },
      'backfill batch committed',
    );
    recordMetric('batchDuration', committedMs, { plan: plan.name });
    tracker.batch(batch.rows, batch.end, segment, sizer.size);
    ends.readBack(segment, lower, batch.end);
    if (batch.last) return 'done';
    if (steering.current.pauseMs > 0) await sleep(steering.current.pauseMs);
    lower = batch.end;
  }
}

/**
 * The batch-end finder of a walk: a connection of its own named
 * `applicationName`, or the walk's connection when none can be opened; its
 * lookups wait for locks as the walk's batches do.
 */
function openBatchEnds(input: BackfillInput, sizer: BatchSizer, applicationName: string): Promise<BatchEnds> {
  const { ctx, plan, facts } = input;
  return BatchEnds.open(
    ctx.connection,
    applicationName,
    ctx.client,
    facts.key,
    batchGuards(plan.guards, sizer.targetMs),
    ctx.log,
    planTransactionSettings(facts, false),
  );
}

/** The table a range walks: the plan's, or the leaf partition it names. */
function rangeTable(table: QualifiedName, state: BackfillState, partition: string | null): QualifiedName {
  if (partition === null) return table;
  const leaf = state.partitions?.find((p) => partitionId(p) === partition);
  if (!leaf) throw new Error(`backfill range in partition ${partition}, which the backfill's partitions do not list`);
  return { schema: leaf.schema, name: leaf.name };
}

/**
 * Walk the unfinished key ranges with `workers` connections at once
 * (application_name `pgshift worker <n>`), each taking the next range when
 * it is done with one, with its own batch size, replica probe and pauses;
 * the plan's lease is still held and checked by the main connection. When
 * one worker fails the others stop after their batch in flight (which
 * commits with its checkpoint), and the first error is thrown.
 */
async function runWorkers(
  input: BackfillInput,
  state: BackfillState,
  segments: readonly (Segment & { readonly from: KeyValue | null })[],
  workers: number,
  tracker: ProgressTracker,
  steering: Steering,
  throttles: Throttles,
): Promise<void> {
  const { ctx, store, plan } = input;
  let failed: { error: unknown } | null = null;
  const stop = (): boolean => failed !== null;
  const clients: Client[] = [];
  const queue = [...segments];
  try {
    await Promise.allSettled(
      Array.from({ length: workers }, async (_, n) => {
        try {
          const client = await connect({ ...ctx.connection, applicationName: `pgshift worker ${n} ${VERSION}` });
          clients.push(client);
          const worker: BackfillInput = {
            ...input,
            ctx: { ...ctx, client, log: ctx.log.child({ worker: n }) },
            store: new StateStore(client, store.schema),
          };
          const sizer = new BatchSizer(state.batchSize, plan.backfill.targetBatchMs, plan.guards.statementTimeoutMs);
          const lagProbe = new ReplicaLagProbe(client);
          const ends = await openBatchEnds(worker, sizer, `pgshift bounds ${n} ${VERSION}`);
          try {
            for (let segment = queue.shift(); segment && !stop(); segment = queue.shift()) {
              const walked = await walk(worker, segment, segment.from, sizer, lagProbe, tracker, ends, steering, throttles, stop, n);
              if (walked === 'done') continue;
              // Workers were tuned down: the range goes back to the queue where this worker stopped, for another to finish.
              queue.push({ ...segment, from: walked.handedBackAt });
              if (
                !(await steering.whileIdle(
                  worker.store,
                  n,
                  () => queue.length > 0 && !stop(),
                  () => ctx.stillHeld?.(),
                ))
              )
                break;
            }
          } finally {
            await ends.close();
          }
        } catch (error) {
          failed ??= { error };
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
  if (failed) throw (failed as { error: unknown }).error;
}

/**
 * Where to cut a key range into `workers` disjoint ranges of about as many
 * rows: keys of a sample of the table's pages (TABLESAMPLE SYSTEM, about
 * 20,000 rows), in key order, at evenly spaced ranks. Only keys not past the
 * upper key are used, so every range ends at or before it; the cuts are
 * real keys, distinct and increasing, so the ranges are disjoint and cover
 * everything up to the upper key whatever the sample. Fewer cuts come back
 * when the sample is too small to place them (a small table).
 */
async function splitKeys(client: Client, facts: PlanFacts, upper: KeyValue, estimate: number, workers: number): Promise<KeyValue[]> {
  const percent = Math.min(100, Math.max(0.001, (20_000 * 100) / Math.max(estimate, 1)));
  // The key comparison binds its operators under the plan's fixed search_path (enterPlanTransaction), in a
  // read of its own that is rolled back: it changes nothing.
  const { rows } = await withRolledBackTransaction(client, async () => {
    await enterPlanTransaction(client, facts, false);
    return client.query(
      `SELECT ${keyAsText(facts.key)} FROM ${qualified(facts.table)} TABLESAMPLE SYSTEM (${percent.toFixed(4)})
        WHERE ${rangeWhere(facts.key, false, true, 1)} ORDER BY ${keyOrder(facts.key)}`,
      [...upper],
    );
  });
  const keys = rows.map((r) => readKey(r, facts.key));
  const cuts: KeyValue[] = [];
  for (let i = 1; i < workers; i++) {
    const k = keys[Math.floor((i * keys.length) / workers)];
    if (!k || k.every((v, j) => v === upper[j])) continue;
    const prev = cuts.at(-1);
    if (prev && prev.every((v, j) => v === k[j])) continue;
    cuts.push(k);
  }
  return cuts;
}

/**
 * Fix what the walk covers and record it: first the transaction horizon
 * (every transaction before it had ended, so every row version it did not
 * write is seen by the walk, which the final check relies on), then the
 * upper key, of the table or of each leaf partition, read after it.
 */
async function startBackfill(input: BackfillInput): Promise<void> {
  const { ctx, store, plan, facts } = input;
  const horizon = await ctx.client.query<{ x: string }>(`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x`);
  const since = horizon.rows[0]!.x;
  const partitioning = await readPartitioning(ctx.client, facts.table);
  if (!partitioning) {
    const found = await ctx.client.query(upperKeySql(facts.table, facts.key));
    const upper = found.rows[0] ? readKey(found.rows[0], facts.key) : null;
    const estimate = await estimateRows(ctx.client, facts.table, plan.guards);
    const cuts = upper && workersOf(input) > 1 && !input.alongside?.length ? await splitKeys(ctx.client, facts, upper, estimate, workersOf(input)) : [];
    await withTransaction(ctx.client, async () => {
      await store.startBackfill(plan.name, upper, estimate, plan.backfill.batchSize, since);
      // Plans walked alongside start at the same horizon and upper key: the walk's batches are theirs too.
      for (const other of input.alongside ?? []) await store.startBackfill(other.plan.name, upper, estimate, plan.backfill.batchSize, since);
      if (upper && cuts.length) {
        const bounds = [null, ...cuts, upper];
        await store.startRanges(
          plan.name,
          cuts.concat([upper]).map((u, i) => ({ lower: bounds[i] ? [...bounds[i]!] : null, upper: [...u] })),
        );
      }
    });
    return;
  }
  const partitions: BackfillPartition[] = [];
  let estimate = 0;
  for (const leaf of partitioning.partitions.filter((p) => !p.partitioned)) {
    const upper = await ctx.client.query(upperKeySql(leaf.table, facts.key));
    partitions.push({ schema: leaf.table.schema, name: leaf.table.name, upperKey: upper.rows[0] ? readKey(upper.rows[0], facts.key) : null });
    estimate += await estimateRows(ctx.client, leaf.table, plan.guards);
  }
  // With several workers, each non-empty partition is a range of its own, walked whole by one of them.
  const walked = partitions.filter((p) => p.upperKey !== null);
  await withTransaction(ctx.client, async () => {
    await store.startBackfill(plan.name, null, estimate, plan.backfill.batchSize, since, partitions);
    if (workersOf(input) > 1 && walked.length > 1)
      await store.startRanges(
        plan.name,
        walked.map((p) => ({ lower: null, upper: [...p.upperKey!], partition: partitionId(p) })),
      );
  });
}

/** What is left to walk: the partitions from the checkpoint's on (the empty ones skipped), or the table. */
export function remainingSegments(table: QualifiedName, state: BackfillState): Segment[] {
  if (state.finishedAt) return [];
  if (!state.partitions) return state.upperKey ? [{ table, upper: state.upperKey, id: null }] : [];
  const at = Math.max(
    0,
    state.partitions.findIndex((p) => partitionId(p) === state.partition),
  );
  const left = state.partitions.slice(at).filter((p) => p.upperKey !== null);
  return left.map((p, i) => ({
    table: { schema: p.schema, name: p.name },
    upper: p.upperKey!,
    id: partitionId(p),
    next: i + 1 < left.length ? partitionId(left[i + 1]!) : undefined,
  }));
}

/**
 * Run `check` (the final check) with an ANALYZE of the new columns beside
 * it, on a connection of its own (`pgshift analyze`), or after it on the
 * runner's when none can be had (`connectSpare`). Every row got a new version and the new
 * columns have no statistics yet, so plans of the application's queries on
 * them would be guesses; the two only read, so neither waits for the other,
 * and the phase takes the longer of them instead of their sum (at 10M rows
 * the ANALYZE took 1.7–2.5 s).
 *
 * ANALYZE takes SHARE UPDATE EXCLUSIVE, which conflicts only with VACUUM,
 * ANALYZE, CREATE INDEX CONCURRENTLY and DDL, never with reads or writes, so
 * waiting for it queues no application query; it waits up to
 * `ANALYZE_LOCK_WAIT_MS` (an autovacuum of the table yields to it after
 * deadlock_timeout), and a failure only warns: statistics are a courtesy,
 * not correctness.
 */
export async function withAnalyzeBeside<T>(input: BackfillInput, check: () => Promise<T>): Promise<T> {
  const { ctx } = input;
  const own = await connectSpare({ ...ctx.connection, applicationName: `pgshift analyze ${VERSION}` }, SPARE_CONNECTION_WAIT_MS);
  if (!own) {
    const result = await check();
    await analyzeNewColumns(input, ctx.client);
    return result;
  }
  const analyzed = analyzeNewColumns(input, own);
  try {
    return await check();
  } finally {
    await analyzed;
    await own.end().catch(() => undefined);
  }
}

/** ANALYZE the new columns only (the others' values did not change, and ANALYZE still updates the table's row and page counts); never throws. */
async function analyzeNewColumns(input: BackfillInput, client: Client): Promise<void> {
  const { ctx, plan, facts } = input;
  const started = performance.now();
  try {
    const columns = (input.inPlace?.columns ?? input.change.new.map((c) => c.name)).map(ident).join(', ');
    await withGuards(client, 'guarded', analyzeGuards(plan.guards), () => client.query(`ANALYZE ${qualified(facts.table)} (${columns})`));
    ctx.log.info({ ms: Math.round(performance.now() - started) }, `analyzed ${facts.table.schema}.${facts.table.name} after the backfill`);
  } catch (error) {
    ctx.log.warn({ err: (error as Error).message }, `could not ANALYZE ${facts.table.schema}.${facts.table.name} after the backfill; run it when convenient`);
  }
}

/** The guards of an ANALYZE: its lock blocks no application query, so it may wait longer than `lock_timeout` (see `ANALYZE_LOCK_WAIT_MS`). */
function analyzeGuards(guards: Guards): Guards {
  return { ...guards, lockTimeoutMs: Math.max(guards.lockTimeoutMs, ANALYZE_LOCK_WAIT_MS) };
}

/**
 * Rows in the table, as the planner would estimate them: `reltuples` scaled to
 * the table's current size. A table never vacuumed nor analyzed has no
 * estimate (-1): it is ANALYZEd first (SHARE UPDATE EXCLUSIVE, which blocks
 * no reads or writes, waited for at most lock_timeout), which also gives the
 * batches' UPDATE statistics to plan with. If that fails the estimate is 0
 * and the progress total grows with the rows done.
 */
export async function estimateRows(client: Client, table: QualifiedName, guards: Guards): Promise<number> {
  const read = async (): Promise<number | null> =>
    (
      await client.query<{ n: number | null }>(
        `SELECT CASE WHEN c.reltuples < 0 THEN NULL
                     WHEN c.relpages = 0 THEN c.reltuples
                     ELSE c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::int8)
                END::float8 AS n
           FROM pg_class c WHERE c.oid = ${literal(qualified(table))}::regclass`,
      )
    ).rows[0]?.n ?? null;
  let n = await read();
  if (n === null) {
    await withGuards(client, 'guarded', analyzeGuards(guards), () => client.query(`ANALYZE ${qualified(table)}`)).catch(() => undefined);
    n = await read();
  }
  return Math.round(n ?? 0);
}
