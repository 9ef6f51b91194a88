import { connectSpare, type Client } from '../db/client.js';
import { SPARE_CONNECTION_WAIT_MS } from '../defaults.js';
import type { Logger } from '../log.js';
import type { Guards } from '../plan/types.js';
import type { ConnectionOptions } from '../db/client.js';
import type { Segment } from './input.js';
import { qualified } from '../db/ident.js';
import { batchEndLiteralSql, keyIndexOnlySql, rangeWhereLiteral, readKey, type KeyColumns, type KeyValue } from './keyset.js';

/** Where a batch ends: the key of its `size`-th row, or null when fewer rows remain (it then goes to the segment's upper key). */
export interface BatchEnd {
  readonly end: KeyValue | null;
  readonly size: number;
  /** It was looked up ahead, while the previous batch ran. */
  readonly ahead: boolean;
}

/**
 * A batch found ahead may be used when the walk now wants at least this share
 * of its rows: a smaller batch than wanted only makes the size grow one batch
 * later, but a much bigger one would hold its row locks longer than the
 * target (after a slow or a timed-out batch the size is found again).
 */
const AHEAD_MAX_OVERSIZE = 1.5;

/**
 * Finds where each batch ends, one batch ahead, on a connection of its own.
 *
 * Finding a batch's end walks the key's index over its rows (about 3 % of a
 * backfill's time at 10M rows, measured in bench/backfill). The key that
 * ends batch k+1 depends only on the key that ends batch k, so it is looked
 * up while batch k's UPDATE runs, on a second connection, and the walk's own
 * connection sends each batch in one message: BEGIN, the settings, the
 * UPDATE, the checkpoint and COMMIT. The lookup is a plain MVCC read in a
 * transaction of its own (ACCESS SHARE, which conflicts only with ACCESS
 * EXCLUSIVE), under the batch's lock and statement timeouts. It sees the
 * table a moment before the batch does; that changes nothing: a batch
 * covers a range of keys, not a set of rows, and rows that came or went in
 * between are simply in it or not.
 *
 * The same connection reads back each committed batch's range (`readBack`).
 *
 * When the connection cannot be opened (max_connections), or does not answer
 * in time (a pooler's full pool: `connectSpare`), the lookups run on
 * the walk's connection, just before each batch, as they used to, and
 * nothing is read back.
 */
export class BatchEnds {
  private ahead: { readonly lower: KeyValue | null; readonly size: number; readonly found: Promise<BatchEnd | Error> } | null = null;
  /** The read-back in flight, and the committed range waiting for it. */
  private reading: Promise<void> | null = null;
  private pending: { readonly segment: Segment; readonly lower: KeyValue | null; readonly end: KeyValue } | null = null;

  private constructor(
    private readonly client: Client,
    private readonly own: boolean,
    private readonly key: KeyColumns,
    private readonly guards: Guards,
    private readonly log: Logger,
    /** `planTransactionSettings` of the plan: the key comparisons bind their operators under its fixed search_path. */
    private readonly settings: string,
  ) {}

  /** Open the lookup connection (`fallback` is used when it cannot be opened). */
  static async open(
    connection: ConnectionOptions,
    applicationName: string,
    fallback: Client,
    key: KeyColumns,
    guards: Guards,
    log: Logger,
    settings: string,
  ): Promise<BatchEnds> {
    const own = await connectSpare({ ...connection, applicationName }, SPARE_CONNECTION_WAIT_MS);
    if (own) return new BatchEnds(own, true, key, guards, log, settings);
    log.info('backfill: no second connection for finding batch ends (refused, or not answering in time); finding them on the walk connection');
    return new BatchEnds(fallback, false, key, guards, log, settings);
  }

  /** The end of the batch of about `size` rows after `lower` in `segment`: the one found ahead when it fits, else found now. */
  async find(segment: Segment, lower: KeyValue | null, size: number): Promise<BatchEnd> {
    const ahead = this.ahead;
    this.ahead = null;
    if (ahead && sameKey(ahead.lower, lower) && ahead.size <= size * AHEAD_MAX_OVERSIZE) {
      const found = await ahead.found;
      // A lookup that failed ahead (a lock wait, a cancel) is simply made again now, where its error counts.
      if (!(found instanceof Error)) return { ...found, ahead: true };
    }
    return this.lookup(segment, lower, size);
  }

  /** Start finding the end of the batch after `lower`, while the current batch runs (no-op without a connection of its own). */
  prefetch(segment: Segment, lower: KeyValue, size: number): void {
    if (!this.own) return;
    this.ahead = {
      lower,
      size,
      found: this.lookup(segment, lower, size).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))),
    };
  }

  /**
   * Read back the rows of a committed batch (after `lower`, up to `end`),
   * while the next batch runs. The first reader of a page whose rows a
   * committed transaction replaced prunes it: the replaced versions are
   * dead to every transaction, so their space is freed (a later batch's new
   * version can then land on the same page) and their index entries are
   * marked dead. After a backfill that reader was the final check, which did
   * it for the whole table at once, after the walk; on a server with data
   * checksums (PostgreSQL 18's default) each page it changed whose last
   * change predated the latest checkpoint also cost a full-page image in the
   * WAL, and a walk of millions of rows outlives several checkpoints. Read
   * back right after its batch, a page has already been logged since the
   * checkpoint (the batch changed it), and the work runs beside the walk.
   * Measured on PostgreSQL 15 with checksums, 2M rows: a first read after
   * a checkpoint 1.43 s and 453 MB of WAL, without one 0.68 s and 5 MB, a
   * second read 0.3 s; at 10M rows (bench/backfill) the final check went
   * from 7.65 s to 3.34 s. (The new versions' hint bits mostly stay for the
   * final check: PostgreSQL sets one only once the WAL is flushed up to the
   * latest asynchronous commit among the transaction ids near the batch's,
   * and the batches commit asynchronously one after another.)
   *
   * The read walks the key's index over the range (ACCESS SHARE, as the
   * lookups; through the index, it reaches both the new and the replaced
   * versions). It proves nothing and nothing waits for it: one is in
   * flight at a time, a range committed meanwhile joins the next one, and a
   * failure is only logged.
   */
  readBack(segment: Segment, lower: KeyValue | null, end: KeyValue): void {
    if (!this.own) return;
    const from = this.pending?.segment === segment ? this.pending.lower : lower;
    this.pending = { segment, lower: from, end };
    this.readPending();
  }

  private readPending(): void {
    const range = this.pending;
    if (this.reading || !range) return;
    this.pending = null;
    this.reading = this.read(range.segment, range.lower, range.end)
      .catch((error: unknown) => this.log.debug({ err: (error as Error).message }, 'backfill: reading back a batch failed'))
      .finally(() => {
        this.reading = null;
        this.readPending();
      });
  }

  /** Close the connection, once the read-back in flight is done. */
  async close(): Promise<void> {
    while (this.reading) await this.reading;
    if (this.own) await this.client.end().catch(() => undefined);
  }

  /**
   * One lookup: the key `size` rows after `lower`, walking the key's index
   * only (the planner settings that could pick a sequential or bitmap scan
   * and a sort of every remaining row, once per batch, are off for the
   * transaction: see `onKeyIndex`).
   */
  private async lookup(segment: Segment, lower: KeyValue | null, size: number): Promise<BatchEnd> {
    const rounded = Math.max(1, Math.round(size));
    const row = await this.onIndex(batchEndLiteralSql(segment.table, this.key, lower, segment.upper, rounded));
    return { end: row ? readKey(row, this.key) : null, size: rounded, ahead: false };
  }

  /** Count a committed range's rows through the key's index, visiting every version its entries point to. */
  private async read(segment: Segment, lower: KeyValue | null, end: KeyValue): Promise<void> {
    await this.onIndex(`SELECT count(*) FROM ${qualified(segment.table)} WHERE ${rangeWhereLiteral(this.key, lower, end)}`);
    this.log.debug({ lower, end, partition: segment.id }, 'backfill: read back a committed range');
  }

  /** One statement in a transaction of its own, under the walk's timeouts, on the key's index; its first row. */
  private async onIndex(sql: string): Promise<Record<string, unknown> | undefined> {
    const sent = this.client.query(
      [
        'BEGIN',
        `SET LOCAL lock_timeout = ${Math.round(this.guards.lockTimeoutMs)}`,
        `SET LOCAL statement_timeout = ${Math.round(this.guards.statementTimeoutMs)}`,
        keyIndexOnlySql(),
        this.settings,
        sql,
        'COMMIT',
      ].join(';\n'),
    ) as unknown as Promise<{ rows: Record<string, unknown>[] }[]>;
    const results = await sent.catch(async (error: unknown) => {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw error;
    });
    return results.at(-2)!.rows[0];
  }
}

function sameKey(a: KeyValue | null, b: KeyValue | null): boolean {
  return a === null || b === null ? a === b : a.length === b.length && a.every((v, i) => v === b[i]);
}
