import { setTimeout as sleep } from 'node:timers/promises';
import { REPLICA_LAG_POLL_MS, THROTTLE_QUERY_TIMEOUT_MS, THROTTLE_RECHECK_MS, WAL_RATE_BURST_MS } from '../defaults.js';
import { withRolledBackTransaction, type Client } from '../db/client.js';
import type { Logger } from '../log.js';
import type { BackfillSettings } from '../plan/types.js';
import { parseLsn, type WaitNotice } from './throttle.js';

/** A wait is said when it starts and then this often while it lasts, as the replica-lag wait is. */
const SAY_EVERY_MS = 30_000;
/** A WAL-rate sleep at least this long shows in the progress (shorter ones are the pace, not a wait). */
const WAL_WAIT_SHOWN_MS = 1_000;

/** A logical slot as `max_slot_lag` sees it. */
interface Slot {
  readonly name: string;
  readonly active: boolean;
  readonly flushed: string;
  readonly lagBytes: number;
}

/**
 * The throttles of `max_slot_lag`, `max_wal_rate`, `throttle_query` and
 * `max_active_sessions`, one instance for the whole backfill: with workers
 * they limit the sum of the walks, not each walk. Asked before each batch on
 * the asking walk's connection, between two transactions, so a wait holds no
 * locks and no snapshot.
 *
 * The slot and session throttles read a system view before every batch (a
 * batch can write a lot of WAL, so a slot's headroom can go in one);
 * `throttle_query`, the plan author's and of unknown cost, runs at most once
 * per `THROTTLE_RECHECK_MS` for all walks together. While one walk waits,
 * the others wait for the same answer.
 *
 * The WAL rate is a token bucket over the server's WAL, read with
 * `pg_current_wal_lsn()` before and after each batch, counting no byte twice
 * when walks overlap: it starts empty, fills at `max_wal_rate` up to
 * `WAL_RATE_BURST_MS` worth, and a batch starts only when it is not in debt.
 * A batch's window is charged whole (other sessions' WAL in it too, which
 * errs on the slow side). The WAL between two batches is charged too, since
 * much of it is the backfill's own (the read-back's pruning of the versions
 * a batch replaced, its checkpoint), unless the walk was held longer than
 * `WAL_RATE_BURST_MS` before its pacing (a pause, a replica or slot wait):
 * the application's WAL meanwhile must not become a debt that stalls the
 * walk once it goes on.
 */
export class Throttles {
  private waiting: Promise<void> | null = null;
  private queryClearAt = -Infinity;
  /** Inactive slots and where and when they were first seen standing there. */
  private readonly standing = new Map<string, { flushed: string; since: number }>();
  private readonly ignored = new Set<string>();
  private hiddenSessionsWarned = false;
  private tokens = 0;
  private filledAt = performance.now();
  /** The WAL position charged up to, and when (0n: nothing charged yet). */
  private countedTo = 0n;
  private countedAt = 0;
  private walSaidAt = -Infinity;

  constructor(
    private readonly settings: BackfillSettings,
    private readonly log: Logger,
    private readonly notice: WaitNotice,
  ) {}

  /** Is any of these throttles set? */
  get any(): boolean {
    const s = this.settings;
    return s.maxSlotLagBytes !== null || s.maxWalRateBytes !== null || s.throttleQuery !== null || s.maxActiveSessions !== null;
  }

  /**
   * Before a batch: wait while a slot, the sessions or `throttle_query`
   * say so, then for the WAL rate; returns where the batch starts in the WAL
   * (null when the rate is not capped), for `afterBatch`.
   */
  async beforeBatch(client: Client, stillHeld: () => void): Promise<bigint | null> {
    if (!this.any) return null;
    while (this.waiting) await this.waiting;
    const s = this.settings;
    const queryDue = s.throttleQuery !== null && performance.now() - this.queryClearAt >= THROTTLE_RECHECK_MS;
    if (queryDue || s.maxSlotLagBytes !== null || s.maxActiveSessions !== null) {
      this.waiting = this.waitWhileHeld(client, stillHeld).finally(() => (this.waiting = null));
      await this.waiting;
    }
    if (this.settings.maxWalRateBytes === null) return null;
    // Held longer than the burst window since the last batch (paused, waiting for a replica, a slot…): what the
    // server wrote meanwhile is the application's, and charging it would stall the walk once it goes on.
    if (this.countedTo > 0n && performance.now() - this.countedAt > WAL_RATE_BURST_MS) this.countedTo = 0n;
    await this.paceWal(stillHeld);
    return this.walPosition(client);
  }

  /** After a batch committed: charge the WAL since the last charge to the rate (see the class comment). */
  async afterBatch(client: Client, from: bigint | null): Promise<void> {
    if (from === null || this.settings.maxWalRateBytes === null) return;
    const to = await this.walPosition(client);
    // From where the last charge ended, not from this batch's start: what the walk causes between its batches
    // (the read-back's pruning of the versions a batch replaced, its checkpoint rows) is its WAL too.
    const start = this.countedTo > 0n ? this.countedTo : from;
    if (to > start) this.tokens -= Number(to - start);
    if (to > this.countedTo) {
      this.countedTo = to;
      this.countedAt = performance.now();
    }
  }

  private async walPosition(client: Client): Promise<bigint> {
    const { rows } = await client.query<{ lsn: string }>(`SELECT pg_catalog.pg_current_wal_lsn()::text AS lsn`);
    return parseLsn(rows[0]!.lsn);
  }

  /** Sleep while the bucket is in debt. */
  private async paceWal(stillHeld: () => void): Promise<void> {
    const rate = this.settings.maxWalRateBytes!;
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min((rate * WAL_RATE_BURST_MS) / 1000, this.tokens + (rate * (now - this.filledAt)) / 1000);
      this.filledAt = now;
      if (this.tokens >= 0) return;
      const ms = Math.ceil((-this.tokens * 1000) / rate);
      const reason = `pacing WAL to max_wal_rate ${bytes(rate)}/s`;
      if (now - this.walSaidAt >= SAY_EVERY_MS) {
        this.walSaidAt = now;
        this.log.warn({ maxWalRateBytes: rate, sleepMs: ms }, `${reason}: batches wait between them as needed`);
      }
      if (ms >= WAL_WAIT_SHOWN_MS) this.notice(reason);
      stillHeld();
      await sleep(Math.min(ms, REPLICA_LAG_POLL_MS));
      if (ms >= WAL_WAIT_SHOWN_MS) this.notice(null);
    }
  }

  /** Poll the slot, session and query throttles until none holds the walk; say why meanwhile. */
  private async waitWhileHeld(client: Client, stillHeld: () => void): Promise<void> {
    let since: number | null = null;
    let saidAt = -Infinity;
    for (;;) {
      // While waiting the query is asked at every poll; between batches at most once per THROTTLE_RECHECK_MS.
      const queried = since !== null || performance.now() - this.queryClearAt >= THROTTLE_RECHECK_MS;
      const reasons = [...(await this.slotReasons(client)), ...(await this.sessionReasons(client)), ...(queried ? await this.queryReasons(client) : [])];
      const now = performance.now();
      if (!reasons.length) {
        if (since !== null) {
          this.log.info({ waitedMs: Math.round(now - since) }, `throttles clear after ${seconds(now - since)}; backfill continues`);
          this.notice(null);
        }
        if (queried) this.queryClearAt = now;
        return;
      }
      const reason = `waiting for ${reasons.join('; ')}`;
      since ??= now;
      if (now - saidAt >= SAY_EVERY_MS) {
        saidAt = now;
        this.log.warn({ reasons }, reason);
      }
      this.notice(reason);
      stillHeld();
      await sleep(REPLICA_LAG_POLL_MS);
    }
  }

  /**
   * Logical slots further behind than `max_slot_lag`, on any database of the
   * server (each holds WAL on the primary's disk alike). A slot PostgreSQL
   * has given up on (`wal_status` lost) holds nothing and is left out. An
   * inactive slot that has stood still for `abandoned_slot_after` is named
   * once and ignored until it moves again.
   */
  private async slotReasons(client: Client): Promise<string[]> {
    const max = this.settings.maxSlotLagBytes;
    if (!max) return [];
    const { rows } = await client.query<Slot>(
      `SELECT slot_name::text AS name, active, confirmed_flush_lsn::text AS flushed,
              pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::float8 AS "lagBytes"
         FROM pg_catalog.pg_replication_slots
        WHERE slot_type = 'logical' AND confirmed_flush_lsn IS NOT NULL AND wal_status IS DISTINCT FROM 'lost'`,
    );
    const now = performance.now();
    const behind: string[] = [];
    for (const slot of rows) {
      if (this.abandoned(slot, now)) continue;
      if (slot.lagBytes > max) behind.push(`slot ${slot.name} ${bytes(slot.lagBytes)} behind${slot.active ? '' : ' (inactive)'}`);
    }
    return behind.length ? [`logical replication (${behind.join(', ')}) to fall under max_slot_lag ${bytes(max)}`] : [];
  }

  private abandoned(slot: Slot, now: number): boolean {
    const after = this.settings.abandonedSlotAfterMs;
    const seen = this.standing.get(slot.name);
    if (slot.active || !seen || seen.flushed !== slot.flushed) {
      if (this.ignored.delete(slot.name)) this.log.info({ slot: slot.name }, `logical slot ${slot.name} moved again: max_slot_lag waits for it again`);
      if (slot.active) this.standing.delete(slot.name);
      else this.standing.set(slot.name, { flushed: slot.flushed, since: now });
      return false;
    }
    if (after <= 0 || now - seen.since < after) return false;
    if (!this.ignored.has(slot.name)) {
      this.ignored.add(slot.name);
      this.log.warn(
        { slot: slot.name, lagBytes: slot.lagBytes },
        `logical slot ${slot.name} is inactive and has not moved for ${seconds(now - seen.since)} (${bytes(slot.lagBytes)} behind): ` +
          `max_slot_lag ignores it from now on (abandoned_slot_after); if nothing reads it, drop it: SELECT pg_drop_replication_slot('${slot.name.replace(/'/g, "''")}')`,
      );
    }
    return true;
  }

  /** Sessions other than pgshift's running or waiting, over `max_active_sessions`. */
  private async sessionReasons(client: Client): Promise<string[]> {
    const max = this.settings.maxActiveSessions;
    if (!max) return [];
    // Every pgshift connection's application_name starts with "pgshift " (db/client.ts), other plans' runners too.
    const { rows } = await client.query<{ active: number; hidden: number }>(
      `SELECT count(*) FILTER (WHERE state IN ('active', 'fastpath function call'))::int AS active,
              count(*) FILTER (WHERE state IS NULL)::int AS hidden
         FROM pg_catalog.pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()
          AND application_name NOT LIKE 'pgshift %'`,
    );
    const { active, hidden } = rows[0]!;
    if (hidden > 0 && !this.hiddenSessionsWarned) {
      this.hiddenSessionsWarned = true;
      this.log.warn(
        { hidden },
        `${hidden} sessions of other roles are not visible to this role (grant it pg_read_all_stats): max_active_sessions does not count them`,
      );
    }
    return active > max ? [`active sessions (${active}) to fall to max_active_sessions ${max}`] : [];
  }

  /**
   * `throttle_query`, in a read-only transaction with its own statement and
   * lock timeouts. It runs as the runner: only the plan author's SQL belongs
   * there. A query cancelled by its timeout counts as "wait" (a server too
   * busy to answer is a reason to); any other error, or an answer that is not
   * one boolean (or NULL, read as false), fails the backfill, which resumes from its checkpoint once
   * the plan is fixed.
   */
  private async queryReasons(client: Client): Promise<string[]> {
    const sql = this.settings.throttleQuery;
    if (!sql) return [];
    try {
      const result = await withRolledBackTransaction(client, async () => {
        await client.query(`SET TRANSACTION READ ONLY`);
        await client.query(`SET LOCAL statement_timeout = ${THROTTLE_QUERY_TIMEOUT_MS}`);
        await client.query(`SET LOCAL lock_timeout = ${THROTTLE_QUERY_TIMEOUT_MS}`);
        // The extended protocol takes one statement only: a `; COMMIT; …` in the text cannot leave the read-only transaction.
        const query = { text: sql, queryMode: 'extended' as const };
        return client.query<Record<string, unknown>>(query);
      });
      const row = result.rows[0];
      const values = row ? Object.values(row) : [];
      if (result.rows.length > 1 || values.length !== 1 || (values[0] !== null && typeof values[0] !== 'boolean'))
        throw new Error(`backfill.throttle_query must return one boolean (true = wait), not ${JSON.stringify(result.rows.slice(0, 2))}`);
      return values[0] === true ? ['throttle_query to return false'] : [];
    } catch (error) {
      if ((error as { code?: string }).code === '57014') return [`throttle_query, cancelled after ${seconds(THROTTLE_QUERY_TIMEOUT_MS)}, to answer`];
      throw error;
    }
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** 83886080 as `80.0MB` (units of 1024, as PostgreSQL prints sizes). */
function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n}B` : `${n.toFixed(1)}${units[i]}`;
}
