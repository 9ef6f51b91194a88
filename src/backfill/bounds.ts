import { connect, type Client } from '../db/client.js';
import type { Logger } from '../log.js';
import type { Guards } from '../plan/types.js';
import type { ConnectionOptions } from '../db/client.js';
import type { Segment } from './input.js';
import { batchEndLiteralSql, keyIndexOnlySql, readKey, type KeyColumns, type KeyValue } from './keyset.js';

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
 * When the connection cannot be opened (max_connections), the lookups run on
 * the walk's connection, just before each batch, as they used to.
 */
export class BatchEnds {
  private ahead: { readonly lower: KeyValue | null; readonly size: number; readonly found: Promise<BatchEnd | Error> } | null = null;

  private constructor(
    private readonly client: Client,
    private readonly own: boolean,
    private readonly key: KeyColumns,
    private readonly guards: Guards,
  ) {}

  /** Open the lookup connection (`fallback` is used when it cannot be opened). */
  static async open(
    connection: ConnectionOptions,
    applicationName: string,
    fallback: Client,
    key: KeyColumns,
    guards: Guards,
    log: Logger,
  ): Promise<BatchEnds> {
    try {
      return new BatchEnds(await connect({ ...connection, applicationName }), true, key, guards);
    } catch (error) {
      log.info({ err: (error as Error).message }, 'backfill: no second connection for finding batch ends; finding them on the walk connection');
      return new BatchEnds(fallback, false, key, guards);
    }
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

  async close(): Promise<void> {
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
    const sent = this.client.query(
      [
        'BEGIN',
        `SET LOCAL lock_timeout = ${Math.round(this.guards.lockTimeoutMs)}`,
        `SET LOCAL statement_timeout = ${Math.round(this.guards.statementTimeoutMs)}`,
        keyIndexOnlySql(),
        batchEndLiteralSql(segment.table, this.key, lower, segment.upper, rounded),
        'COMMIT',
      ].join(';\n'),
    ) as unknown as Promise<{ rows: Record<string, unknown>[] }[]>;
    const results = await sent.catch(async (error: unknown) => {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw error;
    });
    const row = results.at(-2)!.rows[0];
    return { end: row ? readKey(row, this.key) : null, size: rounded, ahead: false };
  }
}

function sameKey(a: KeyValue | null, b: KeyValue | null): boolean {
  return a === null || b === null ? a === b : a.length === b.length && a.every((v, i) => v === b[i]);
}
