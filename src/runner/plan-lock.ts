import { randomUUID } from 'node:crypto';
import { actor, connect, type Client, type ConnectionOptions } from '../db/client.js';
import { ident } from '../db/ident.js';
import { requireSameSession, requireSessions, type SessionMark } from '../db/session-check.js';
import { LEASE_RENEWALS_PER_PERIOD } from '../defaults.js';
import { LeaseLostError, PlanBusyError, SessionNotKeptError } from '../errors.js';
import type { Logger } from '../log.js';
import { STATE_SCHEMA_VERSION } from '../state/migrations.js';
import { ensureStateSchema, stateSchemaVersion } from '../state/schema.js';
import { VERSION } from '../version.js';

/** Where the lease lives and how long it lasts. */
export interface PlanLeaseOptions {
  /** The runner's connection: it does the work and holds the beacon. */
  readonly client: Client;
  /** A second connection of the runner, for the heartbeat (the first may be busy for hours in one statement). */
  readonly side: Client;
  /** Opens a new heartbeat connection when the one in use fails (a dropped connection must not cost the lease). */
  readonly reconnect?: (() => Promise<Client>) | undefined;
  readonly schema: string;
  readonly plan: string;
  readonly ttlMs: number;
  readonly log: Logger;
  /** The runner connection's session, checked again at every phase boundary. */
  readonly session: SessionMark;
}

/**
 * A runner's hold on one plan: a row of `<schema>.leases`, not a session
 * lock, so it means the same whatever carries the connection.
 *
 * - Taken by one INSERT … ON CONFLICT DO UPDATE … WHERE, which also takes
 *   over a lease that expired or whose holder's session is gone. The
 *   primary key serialises two runners: the second waits for the first's
 *   statement to commit, then re-evaluates the WHERE against its row, so
 *   exactly one wins (READ COMMITTED's documented ON CONFLICT behaviour).
 * - Renewed every ttl/3 from a second connection, by its own token only.
 * - Released by deleting the row with its own token only: a runner that lost
 *   its lease never frees another's.
 * - The beacon: a session-level advisory lock on a key drawn from the random
 *   token, held by the runner's working connection. A session lock is only
 *   released by its session, so while the beacon is held the runner's
 *   backend lives, and nothing it sent can still be running once it is gone
 *   (a closed connection, or a pooler's DISCARD ALL). A killed runner is then
 *   replaced at once, as with the advisory lock this replaces, instead of
 *   after the lease expires. The key is unique per lease, so a beacon left on
 *   a pooled backend can never vouch for a later lease; and the row records
 *   the backend holding it, so a lock another session takes on the same key
 *   vouches for nothing (see `beaconHeld`).
 */
export class PlanLease {
  private readonly token = randomUUID();
  private readonly table: string;
  private beacon: string | null = null;
  private held = false;
  private lost: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private renewing = false;
  private side: Client;

  constructor(private readonly o: PlanLeaseOptions) {
    this.table = `${ident(o.schema)}.leases`;
    this.side = o.side;
  }

  /** Is the lease held by this runner (as far as it knows)? */
  get isHeld(): boolean {
    return this.held;
  }

  /**
   * Take the plan's lease, or fail at once with exit 5 naming the holder.
   * Creates the state tables if the leases table is missing (an installation
   * made by an older version), through the usual IF NOT EXISTS path. No-op when held.
   */
  async take(): Promise<void> {
    if (this.held) return;
    const { client, plan, ttlMs } = this.o;
    // The lease row records the beacon's backend (state schema version 6): an older installation is upgraded first.
    if ((await stateSchemaVersion(client, this.o.schema)) < STATE_SCHEMA_VERSION) await ensureStateSchema(client, this.o.schema);
    // The beacon first: a rival that sees our row must also see it held.
    // pg_try_advisory_lock never waits; the key is random, so it is always free.
    const { rows: b } = await client.query<{ key: string }>(
      `SELECT k::text AS key FROM (SELECT hashtextextended($1, 0) AS k) s WHERE pg_try_advisory_lock(k)`,
      [this.token],
    );
    this.beacon = b[0]?.key ?? null;
    if (!this.beacon) throw new Error('could not take the lease beacon (an advisory lock on a random key)');
    const { rowCount } = await client.query(
      `INSERT INTO ${this.table} AS l (plan, token, holder, pid, beacon, backend_pid, acquired_at, heartbeat_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, pg_backend_pid(), now(), now(), now() + $6 * interval '1 millisecond')
       ON CONFLICT (plan) DO UPDATE SET token = EXCLUDED.token, holder = EXCLUDED.holder, pid = EXCLUDED.pid,
         beacon = EXCLUDED.beacon, backend_pid = EXCLUDED.backend_pid, acquired_at = EXCLUDED.acquired_at,
         heartbeat_at = EXCLUDED.heartbeat_at, expires_at = EXCLUDED.expires_at
       WHERE l.expires_at <= now() OR NOT ${beaconHeld('l')}`,
      [plan, this.token, `pgshift ${VERSION} ${actor()}`, process.pid, this.beacon, ttlMs],
    );
    if (!rowCount) {
      await this.dropBeacon();
      throw new PlanBusyError(plan, await describeHolder(client, this.table, plan));
    }
    this.held = true;
    this.timer = setInterval(() => void this.renewInBackground(), Math.max(10, ttlMs / LEASE_RENEWALS_PER_PERIOD));
    this.timer.unref();
  }

  /** Throw (exit 5) if the heartbeat found the lease taken over; no query, so it is cheap before every step and batch. */
  stillHeld(): void {
    if (this.lost) throw new LeaseLostError(this.o.plan, this.lost);
  }

  /**
   * Before a phase is recorded: the runner's session is still its own (exit 2
   * if not), and the lease is still this runner's, renewed now (exit 5 if not).
   */
  async check(): Promise<void> {
    if (!this.held) await this.take();
    await requireSameSession(this.o.client, this.o.session);
    if (this.lost || !(await this.renew(this.o.client))) {
      this.held = false;
      throw new LeaseLostError(this.o.plan, this.lost ?? (await describeHolder(this.o.client, this.table, this.o.plan)));
    }
  }

  /** Give the lease up: stop the heartbeat, delete our row (only ours), drop the beacon. */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.held) {
      const sql = `DELETE FROM ${this.table} WHERE plan = $1 AND token = $2`;
      await this.o.client
        .query(sql, [this.o.plan, this.token])
        .catch(() => this.side.query(sql, [this.o.plan, this.token]))
        .catch(() => undefined); // then it expires
      this.held = false;
    }
    await this.dropBeacon();
  }

  /** End the heartbeat connection (the one in use, which may not be the first). */
  async endSide(): Promise<void> {
    await this.side.end().catch(() => undefined);
  }

  private async replaceSide(): Promise<void> {
    if (!this.o.reconnect) return;
    const old = this.side;
    try {
      this.side = await this.o.reconnect();
      await old.end().catch(() => undefined);
    } catch (error) {
      this.o.log.warn({ err: (error as Error).message }, `could not reconnect the lease heartbeat of plan ${this.o.plan}`);
    }
  }

  private async dropBeacon(): Promise<void> {
    if (this.beacon) await this.o.client.query(`SELECT pg_advisory_unlock($1::int8)`, [this.beacon]).catch(() => undefined);
    this.beacon = null;
  }

  /** Extend our lease from now; false when the row is no longer ours. */
  private async renew(client: Client): Promise<boolean> {
    const { rowCount } = await client.query(
      `UPDATE ${this.table} SET heartbeat_at = now(), expires_at = now() + $3 * interval '1 millisecond'
        WHERE plan = $1 AND token = $2`,
      [this.o.plan, this.token, this.o.ttlMs],
    );
    return rowCount === 1;
  }

  private async renewInBackground(): Promise<void> {
    if (this.renewing || !this.held || this.lost) return;
    this.renewing = true;
    try {
      if (!(await this.renew(this.side))) {
        this.lost = await describeHolder(this.side, this.table, this.o.plan);
        this.o.log.error({ holder: this.lost }, `lost the lease on plan ${this.o.plan}; stopping before the next phase is recorded`);
      }
    } catch (error) {
      // A missed heartbeat is harmless while the lease lasts; the check at the next phase boundary decides.
      this.o.log.warn({ err: (error as Error).message }, `could not renew the lease on plan ${this.o.plan}; reconnecting`);
      await this.replaceSide();
    } finally {
      this.renewing = false;
    }
  }
}

/**
 * SQL: is the beacon of the lease row `row` (an alias of the leases table)
 * held right now? Only the exclusive lock the runner took with
 * `pg_try_advisory_lock` counts, and only in the backend the row recorded:
 * the key can be read from pg_locks by anyone, and any role may queue
 * `pg_advisory_lock_shared` (or an exclusive lock) on it, which is granted
 * once the runner's backend is gone and would otherwise keep a dead runner's
 * lease alive until it expires. A row written before `backend_pid` was
 * recorded (an older runner still at work) is vouched for by any backend's
 * exclusive lock, as before.
 */
function beaconHeld(row: string): string {
  return `EXISTS (SELECT 1 FROM pg_catalog.pg_locks bl
     WHERE bl.locktype = 'advisory' AND bl.granted AND bl.mode = 'ExclusiveLock' AND bl.objsubid = 1
       AND bl.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
       AND ((bl.classid::int8 << 32) | bl.objid::int8) = ${row}.beacon
       AND (${row}.backend_pid IS NULL OR bl.pid = ${row}.backend_pid))`;
}

/** The lease holder of a plan, described for a message: who, since when, last heartbeat, expiry. */
export async function describeHolder(client: Client, table: string, plan: string): Promise<string> {
  const { rows } = await client.query<{ pid: number; holder: string; acquired: Date; ago: number; expires: Date; alive: boolean }>(
    `SELECT pid, holder, acquired_at AS acquired, extract(epoch FROM now() - heartbeat_at)::float8 AS ago,
            expires_at AS expires, ${beaconHeld('l')} AS alive
       FROM ${table} l WHERE plan = $1`,
    [plan],
  );
  const h = rows[0];
  if (!h) return 'a runner that has just finished';
  return (
    `pid ${h.pid}, ${h.holder}, holding it since ${h.acquired.toISOString()}, last heartbeat ${Math.max(0, h.ago).toFixed(1)}s ago; ` +
    `its lease expires at ${h.expires.toISOString()} unless renewed` +
    (h.alive ? '' : ', and its session is gone')
  );
}

/** What `withPlanLock` needs: the runner's connection, where state lives, and the lease's length. */
export interface PlanLockOptions {
  readonly client: Client;
  readonly connection: ConnectionOptions;
  readonly schema: string;
  readonly plan: string;
  readonly ttlMs: number;
  readonly log: Logger;
  /** Does the state schema exist? If not, the lease is taken later, by `lease.take()` before the first state write. */
  readonly stateExists: () => Promise<boolean>;
}

/**
 * Run `fn` holding the plan's lease. First the runner's connections must
 * keep their sessions (exit 2 otherwise: a transaction pooler). The lease is
 * tried, never waited for: a second runner fails at once (exit 5) naming the
 * holder. A database pgshift never touched has no state schema to keep a
 * lease in; then `fn` must call `lease.take()` right after creating it, so
 * invalid input still leaves such a database untouched.
 */
export async function withPlanLock<T>(o: PlanLockOptions, fn: (lease: PlanLease) => Promise<T>): Promise<T> {
  const open = (): Promise<Client> => connect({ ...o.connection, applicationName: 'pgshift lease' });
  const side = await open();
  let lease: PlanLease | null = null;
  try {
    const session = await requireSessions(o.client, side);
    lease = new PlanLease({ client: o.client, side, reconnect: open, schema: o.schema, plan: o.plan, ttlMs: o.ttlMs, log: o.log, session });
    if (await o.stateExists()) await lease.take();
    return await fn(lease);
  } finally {
    await lease?.release();
    await (lease ? lease.endSide() : side.end().catch(() => undefined));
  }
}

/** Errors after which nothing more may be recorded: the plan is not (or no longer) this runner's to write. */
export function mustNotRecord(error: unknown): boolean {
  return error instanceof LeaseLostError || error instanceof SessionNotKeptError;
}
