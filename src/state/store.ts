import type { Client } from '../db/client.js';
import { actor, withTransaction } from '../db/client.js';
import { display, ident, literal } from '../db/ident.js';
import { STATE_SCHEMA_VERSION } from './migrations.js';
import { assertNotNewer, ensureStateSchema, stateSchemaVersion } from './schema.js';
import { assertTrustedState } from './trust.js';
import type { PlanFacts } from '../changes/model.js';
import type { ArchivedColumn } from '../changes/steps.js';
import type { Action, Phase, Status } from '../phases/phases.js';
import type { ChangeKind } from '../changes/kinds/registry.js';
import { VERSION } from '../version.js';

/** One row of `pgshift.plans`. */
export interface PlanState {
  readonly name: string;
  readonly table: string;
  readonly kind: ChangeKind;
  readonly checksum: string;
  readonly phase: Phase | null;
  readonly status: Status;
  /** The phase being applied or rolled back when the runner stopped (failed or killed); null when none. */
  readonly unfinishedPhase: Phase | null;
  readonly unfinishedAction: Action | null;
  readonly lastError: string | null;
  readonly facts: PlanFacts;
  readonly startedAt: Date;
  readonly updatedAt: Date;
}

/** A plan's backfill as steered from outside the runner; a null setting is the plan file's. */
export interface BackfillControl {
  readonly paused: boolean;
  readonly targetBatchMs: number | null;
  readonly pauseMs: number | null;
  readonly workers: number | null;
  readonly maxReplicaLagMs: number | null;
  readonly changedAt: Date;
  readonly changedBy: string;
}

/** One row of `pgshift.backfill`. */
export interface BackfillState {
  readonly upperKey: string[] | null;
  readonly lastKey: string[] | null;
  readonly rowsDone: number;
  readonly rowsEstimated: number;
  readonly batchSize: number;
  readonly startedAt: Date;
  /** When the last checkpoint was written. */
  readonly updatedAt: Date;
  readonly finishedAt: Date | null;
  /**
   * The transaction horizon when the walk started (`xid8` as text): every
   * transaction before it had ended. Null for a backfill started by a
   * pgshift that did not record it (the final check then reads every row).
   */
  readonly sinceXid: string | null;
  /** A partitioned table: its leaf partitions, walked one after the other in this order, each with its upper key. */
  readonly partitions: readonly BackfillPartition[] | null;
  /** The partition the checkpoint is in (`schema.name`), for a partitioned table. */
  readonly partition: string | null;
}

/** One key range of a backfill run by several workers (`backfill.workers`): a part of a plain table's keys, or a whole leaf partition. */
export interface BackfillRange {
  /** The range's number (its worker's, on a plain table, where each worker walks one range). */
  readonly worker: number;
  /** The leaf partition the range is (`schema.name`); null on a plain table. */
  readonly partition: string | null;
  /** Exclusive; null = from the first key. */
  readonly lowerKey: string[] | null;
  /** Inclusive. */
  readonly upperKey: string[];
  readonly lastKey: string[] | null;
  readonly rowsDone: number;
  readonly finished: boolean;
}

/** One leaf partition of a backfill walked partition by partition. */
export interface BackfillPartition {
  readonly schema: string;
  readonly name: string;
  /** Its last key when the walk started; null when it was empty. */
  readonly upperKey: string[] | null;
}

/** The most recent event of a plan, for `status`. */
export interface LastEvent {
  readonly phase: Phase;
  readonly action: Action;
  readonly outcome: 'succeeded' | 'failed';
  readonly finishedAt: Date;
}

/** One event of the history, as `migrate plan log` shows it. */
export interface HistoryEvent {
  readonly id: number;
  readonly plan: string;
  readonly phase: Phase;
  readonly action: Action;
  readonly outcome: 'succeeded' | 'failed';
  readonly error: string | null;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly durationMs: number;
  /** `user@host` of the runner. */
  readonly actor: string;
  /** The pgshift version that ran it. */
  readonly version: string;
  /** The run was given `--force`. */
  readonly forced: boolean;
}

/** What a plan's contract archived (`pgshift.archives`, state schema version 9). */
export interface ArchiveState {
  /** Each old column with the name it is archived under. */
  readonly columns: readonly ArchivedColumn[];
  /** `pg_get_indexdef` of each index contract dropped on the old columns, built again by its rollback. */
  readonly indexes: readonly string[];
  /** When contract archived the columns; null while contract has not finished. */
  readonly archivedAt: Date | null;
  /** When the first `apply` drops them (`archivedAt` + `contract.keep`); null while contract has not finished. */
  readonly keepUntil: Date | null;
  /** A rollback of contract has started refilling the old columns (its backfill checkpoint is its own). */
  readonly refilling: boolean;
  /** When the archived columns were dropped; contract can no longer be rolled back. */
  readonly purgedAt: Date | null;
  /** Not purged, and `keepUntil` has passed by the database's clock: the next `apply` drops them. */
  readonly due: boolean;
}

/** Is a plan in flight: started and neither complete nor rolled back? */
export function inFlight(state: PlanState | null): boolean {
  return state !== null && (state.status === 'in_progress' || state.status === 'failed');
}

const PLAN_COLUMNS = `name, table_name AS "table", kind, checksum, phase, status, unfinished_phase AS "unfinishedPhase",
  unfinished_action AS "unfinishedAction", last_error AS "lastError", facts, started_at AS "startedAt", updated_at AS "updatedAt"`;

const ARCHIVE_COLUMNS = `columns, indexes, archived_at AS "archivedAt", archived_at + keep AS "keepUntil", refilling, purged_at AS "purgedAt",
  (purged_at IS NULL AND archived_at + keep <= now()) IS TRUE AS due`;

/** The state schema version that has `archives`. */
const ARCHIVES_VERSION = 9;

const BACKFILL_COLUMNS = `upper_key AS "upperKey", last_key AS "lastKey", rows_done::float8 AS "rowsDone",
  rows_estimated::float8 AS "rowsEstimated", batch_size AS "batchSize", started_at AS "startedAt", updated_at AS "updatedAt",
  finished_at AS "finishedAt"`;
/** The columns state schema version 3 added (a schema that has not been upgraded yet is read as it is). */
const BACKFILL_V3_COLUMNS = `since_xid::text AS "sinceXid", partitions, partition`;
const BACKFILL_V3_ABSENT = `NULL::text AS "sinceXid", NULL::jsonb AS partitions, NULL::text AS partition`;

/** Reads and writes pgshift's state tables in one schema. */
export class StateStore {
  private readonly s: string;
  /** The state schema's version, once read (0 = none yet). */
  private version: number | null = null;
  constructor(
    private readonly client: Client,
    readonly schema: string,
  ) {
    this.s = ident(schema);
  }

  /**
   * Does the state schema exist yet? Reads of a database without it find no
   * state. A schema written by a newer pgshift, or holding state objects the
   * runner cannot trust (see state/trust.ts), is refused (exit 2) before
   * anything reads or writes it.
   */
  async exists(): Promise<boolean> {
    if (this.version === null) {
      // Before the first read: even a SELECT of a look-alike (a view) would run its owner's functions as the runner.
      await assertTrustedState(this.client, this.schema, false);
      this.version = await stateSchemaVersion(this.client, this.schema);
      assertNotNewer(this.schema, this.version);
    }
    return this.version > 0;
  }

  /** Create the state schema, or upgrade an older one, before the first write. */
  async ensure(): Promise<void> {
    if ((await this.exists()) && this.version === STATE_SCHEMA_VERSION) return;
    await ensureStateSchema(this.client, this.schema);
    this.version = STATE_SCHEMA_VERSION;
  }

  /** A plan's state, or null if it never started. */
  async get(name: string): Promise<PlanState | null> {
    if (!(await this.exists())) return null;
    const { rows } = await this.client.query<PlanState>(`SELECT ${PLAN_COLUMNS} FROM ${this.s}.plans WHERE name = $1`, [name]);
    return rows[0] ?? null;
  }

  /** Every plan's state, by name. */
  async all(): Promise<PlanState[]> {
    if (!(await this.exists())) return [];
    const { rows } = await this.client.query<PlanState>(`SELECT ${PLAN_COLUMNS} FROM ${this.s}.plans ORDER BY name`);
    return rows;
  }

  /**
   * The columns each plan in flight claims (see `start`), by plan. A state
   * schema from before claims (version 10) has none: its plans in flight are
   * then taken to claim their whole table.
   */
  async claims(): Promise<Map<string, readonly string[]> | null> {
    if (!(await this.exists()) || (this.version ?? 0) < 10) return null;
    const { rows } = await this.client.query<{ plan: string; columns: string[] }>(
      `SELECT plan, array_agg(column_name ORDER BY column_name) AS columns FROM ${this.s}.plan_columns GROUP BY plan`,
    );
    return new Map(rows.map((r) => [r.plan, r.columns]));
  }

  /** The plan in flight on a table, other than `except`, that claims one of `columns`, if any. */
  async inFlightOverlapping(table: string, columns: readonly string[], except: string): Promise<PlanState | null> {
    if (!(await this.exists())) return null;
    const { rows } = await this.client.query<PlanState>(
      `SELECT ${PLAN_COLUMNS} FROM ${this.s}.plans p
        WHERE p.table_name = $1 AND p.name <> $3 AND p.status IN ('in_progress', 'failed')
          AND EXISTS (SELECT FROM ${this.s}.plan_columns c WHERE c.plan = p.name AND c.table_name = $1 AND c.column_name = ANY ($2::text[]))
        ORDER BY p.started_at LIMIT 1`,
      [table, columns, except],
    );
    return rows[0] ?? null;
  }

  /**
   * Record a plan's start (or restart after a full rollback): checksum and
   * facts, and the columns it claims on its table, in one transaction. A
   * column is claimed by one plan in flight at most (the primary key of
   * `plan_columns`), so of two runners starting overlapping plans at once
   * the second fails with a unique violation and nothing of its start is
   * recorded.
   */
  async start(name: string, kind: ChangeKind, checksum: string, facts: PlanFacts, columns: readonly string[]): Promise<void> {
    await this.ensure();
    await withTransaction(this.client, async () => {
      await this.client.query(
        `INSERT INTO ${this.s}.plans (name, table_name, kind, checksum, phase, status, facts)
         VALUES ($1, $2, $3, $4, NULL, 'in_progress', $5)
         ON CONFLICT (name) DO UPDATE SET table_name = EXCLUDED.table_name, kind = EXCLUDED.kind,
           checksum = EXCLUDED.checksum, phase = NULL, status = 'in_progress', unfinished_phase = NULL,
           unfinished_action = NULL, last_error = NULL, facts = EXCLUDED.facts, started_at = now(), updated_at = now()`,
        [name, display(facts.table), kind, checksum, JSON.stringify(facts)],
      );
      await this.client.query(`DELETE FROM ${this.s}.plan_columns WHERE plan = $1`, [name]);
      await this.client.query(`INSERT INTO ${this.s}.plan_columns (plan, table_name, column_name) SELECT $1, $2, c FROM unnest($3::text[]) c`, [
        name,
        display(facts.table),
        [...new Set(columns)],
      ]);
    });
  }

  /**
   * A contracted plan goes back into flight (contract's rollback): it claims
   * its columns again, as at its start. The caller has looked for a plan in
   * flight on them; one that started since fails here on the claims' key.
   */
  async claimAgain(name: string, table: string, columns: readonly string[]): Promise<void> {
    if ((this.version ?? 0) < 10) return;
    await this.client.query(`DELETE FROM ${this.s}.plan_columns WHERE plan = $1`, [name]);
    await this.client.query(`INSERT INTO ${this.s}.plan_columns (plan, table_name, column_name) SELECT $1, $2, c FROM unnest($3::text[]) c`, [
      name,
      table,
      [...new Set(columns)],
    ]);
  }

  /** Accept an edited plan (`--force`): record its new checksum. */
  async setChecksum(name: string, checksum: string): Promise<void> {
    await this.client.query(`UPDATE ${this.s}.plans SET checksum = $2, updated_at = now() WHERE name = $1`, [name, checksum]);
  }

  /** A phase finished in either direction: the plan now stands at `phase`. */
  async moveTo(name: string, phase: Phase | null): Promise<void> {
    const status: Status = phase === 'contract' ? 'complete' : phase === null ? 'rolled_back' : 'in_progress';
    // A plan that leaves flight gives its columns up in the same statement: the next plan on them may start.
    const release = status === 'in_progress' || (this.version ?? 0) < 10 ? '' : `, released AS (DELETE FROM ${this.s}.plan_columns WHERE plan = $1) `;
    await this.client.query(
      `WITH moved AS (UPDATE ${this.s}.plans SET phase = $2, status = $3, unfinished_phase = NULL, unfinished_action = NULL,
         last_error = NULL, updated_at = now() WHERE name = $1)${release} SELECT`,
      [name, phase, status],
    );
  }

  /**
   * A phase starts: recorded before its first statement, so that a runner
   * killed mid-phase leaves the plan saying which phase is half done.
   */
  async markUnfinished(name: string, phase: Phase, action: Action): Promise<void> {
    // A complete plan whose contract is being rolled back is in flight again.
    await this.client.query(
      `UPDATE ${this.s}.plans SET unfinished_phase = $2, unfinished_action = $3, status = CASE WHEN status = 'complete' THEN 'in_progress' ELSE status END,
         updated_at = now() WHERE name = $1`,
      [name, phase, action],
    );
  }

  /** A phase failed part-way; the plan keeps its last completed phase. */
  async markFailed(name: string, phase: Phase, action: Action, error: string): Promise<void> {
    await this.client.query(
      `UPDATE ${this.s}.plans SET status = 'failed', unfinished_phase = $2, unfinished_action = $3, last_error = $4,
         updated_at = now() WHERE name = $1`,
      [name, phase, action, error],
    );
  }

  /** Append to the history; `forced` records that the run was given `--force`. */
  async event(name: string, phase: Phase, action: Action, startedAt: Date, error: string | null, forced = false): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.s}.events (plan, phase, action, outcome, error, started_at, actor, version, forced)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [name, phase, action, error === null ? 'succeeded' : 'failed', error, startedAt, actor(), VERSION, forced],
    );
  }

  /** The history, newest first: every plan's, or those named. */
  async history(plans: readonly string[], limit: number): Promise<HistoryEvent[]> {
    if (!(await this.exists())) return [];
    const { rows } = await this.client.query<HistoryEvent>(
      `SELECT id::float8 AS id, plan, phase, action, outcome, error, started_at AS "startedAt", finished_at AS "finishedAt",
              (extract(epoch FROM finished_at - started_at) * 1000)::float8 AS "durationMs", actor, version, forced
         FROM ${this.s}.events WHERE cardinality($1::text[]) = 0 OR plan = ANY ($1) ORDER BY id DESC LIMIT $2`,
      [plans, limit],
    );
    return rows;
  }

  /** The newest event of each plan. */
  async lastEvents(): Promise<Map<string, LastEvent>> {
    if (!(await this.exists())) return new Map();
    const { rows } = await this.client.query<LastEvent & { plan: string }>(
      `SELECT DISTINCT ON (plan) plan, phase, action, outcome, finished_at AS "finishedAt"
         FROM ${this.s}.events ORDER BY plan, id DESC`,
    );
    return new Map(rows.map((r) => [r.plan, r]));
  }

  private backfillV3(): string {
    return (this.version ?? 0) >= 3 ? BACKFILL_V3_COLUMNS : BACKFILL_V3_ABSENT;
  }

  /** A plan's backfill checkpoint, or null before the backfill starts. */
  async backfill(name: string): Promise<BackfillState | null> {
    if (!(await this.exists())) return null;
    const { rows } = await this.client.query<BackfillState>(`SELECT ${BACKFILL_COLUMNS}, ${this.backfillV3()} FROM ${this.s}.backfill WHERE plan = $1`, [name]);
    return rows[0] ?? null;
  }

  /** How a plan's backfill is steered (`pause`, `tune`), or null when nobody steered it (or the schema predates steering). */
  async control(name: string): Promise<BackfillControl | null> {
    if (!(await this.exists()) || (this.version ?? 0) < 7) return null;
    const { rows } = await this.client.query<BackfillControl>(
      `SELECT paused, target_batch_ms AS "targetBatchMs", pause_ms AS "pauseMs", workers, max_replica_lag_ms AS "maxReplicaLagMs",
              changed_at AS "changedAt", changed_by AS "changedBy"
         FROM ${this.s}.backfill_control WHERE plan = $1`,
      [name],
    );
    return rows[0] ?? null;
  }

  /** Pause, resume or retune a plan's backfill: the fields given replace the recorded ones (null = back to the plan file's). */
  async steer(name: string, change: Partial<Omit<BackfillControl, 'changedAt' | 'changedBy'>>): Promise<BackfillControl> {
    const columns = {
      paused: 'paused',
      targetBatchMs: 'target_batch_ms',
      pauseMs: 'pause_ms',
      workers: 'workers',
      maxReplicaLagMs: 'max_replica_lag_ms',
    } as const;
    const given = (Object.keys(columns) as (keyof typeof columns)[]).filter((k) => change[k] !== undefined);
    await this.client.query(
      `INSERT INTO ${this.s}.backfill_control (plan${given.map((k) => `, ${columns[k]}`).join('')})
       VALUES ($1${given.map((_, i) => `, $${i + 2}`).join('')})
       ON CONFLICT (plan) DO UPDATE SET changed_at = now(), changed_by = session_user${given.map((k) => `, ${columns[k]} = EXCLUDED.${columns[k]}`).join('')}`,
      [name, ...given.map((k) => change[k])],
    );
    return (await this.control(name))!;
  }

  /** Every plan's backfill progress, by plan. */
  async allBackfills(): Promise<Map<string, BackfillState>> {
    if (!(await this.exists())) return new Map();
    const { rows } = await this.client.query<BackfillState & { plan: string }>(
      `SELECT plan, ${BACKFILL_COLUMNS}, ${this.backfillV3()} FROM ${this.s}.backfill`,
    );
    return new Map(rows.map((r) => [r.plan, r]));
  }

  /**
   * Start a backfill: fix its upper bound (for a partitioned table, each
   * partition's), and the horizon `sinceXid` read before the upper keys were.
   */
  async startBackfill(
    name: string,
    upperKey: string[] | null,
    rowsEstimated: number,
    batchSize: number,
    sinceXid: string,
    partitions: readonly BackfillPartition[] | null = null,
  ): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.s}.backfill (plan, upper_key, last_key, rows_done, rows_estimated, batch_size, since_xid, partitions, partition)
       VALUES ($1, $2, NULL, 0, $3, $4, $5::xid8, $6, $7)`,
      [
        name,
        JSON.stringify(upperKey),
        Math.max(0, Math.round(rowsEstimated)),
        batchSize,
        sinceXid,
        partitions ? JSON.stringify(partitions) : null,
        partitions?.[0] ? `${partitions[0].schema}.${partitions[0].name}` : null,
      ],
    );
  }

  /**
   * Move the checkpoint past a batch, and record the batch's transaction id
   * (the final check knows rows it wrote as already proven). Called inside
   * the batch's own transaction, so the checkpoint, the id and the rows they
   * describe commit together. `partition` is the partition the checkpoint is
   * in from now on (with `lastKey` null when the batch finished the previous one).
   */
  async checkpoint(name: string, lastKey: string[] | null, rows: number, batchSize: number, partition: string | null = null): Promise<void> {
    await this.client.query(this.checkpointSql(name, lastKey, rows, batchSize, partition));
  }

  /** The statement `checkpoint` runs, values written as literals, for a batch that sends it along with its COMMIT. */
  checkpointSql(name: string, lastKey: string[] | null, rows: number, batchSize: number, partition: string | null = null): string {
    return `WITH batch AS (INSERT INTO ${this.s}.backfill_batches (plan, xid) VALUES (${literal(name)}, pg_current_xact_id()) ON CONFLICT DO NOTHING)
       UPDATE ${this.s}.backfill SET last_key = ${literal(JSON.stringify(lastKey))}::jsonb, rows_done = rows_done + ${Math.round(rows)},
              batch_size = ${Math.round(batchSize)}, partition = ${partition === null ? 'NULL' : literal(partition)}, updated_at = now()
        WHERE plan = ${literal(name)}`;
  }

  /** Fix the key ranges of a backfill run by several workers (called in the transaction that starts it). */
  async startRanges(name: string, ranges: readonly { lower: string[] | null; upper: string[]; partition?: string }[]): Promise<void> {
    for (const [worker, r] of ranges.entries()) {
      await this.client.query(`INSERT INTO ${this.s}.backfill_ranges (plan, worker, lower_key, upper_key, partition) VALUES ($1, $2, $3, $4, $5)`, [
        name,
        worker,
        JSON.stringify(r.lower),
        JSON.stringify(r.upper),
        r.partition ?? null,
      ]);
    }
  }

  /** The key ranges of a backfill run by several workers, by worker; empty for a single runner. */
  async ranges(name: string): Promise<BackfillRange[]> {
    if ((this.version ?? 0) < 3) return [];
    const { rows } = await this.client.query<BackfillRange>(
      `SELECT worker, ${(this.version ?? 0) >= 5 ? 'partition' : 'NULL::text AS partition'}, lower_key AS "lowerKey", upper_key AS "upperKey", last_key AS "lastKey", rows_done::float8 AS "rowsDone", finished_at IS NOT NULL AS finished
         FROM ${this.s}.backfill_ranges WHERE plan = $1 ORDER BY worker`,
      [name],
    );
    return rows;
  }

  /**
   * Move one worker's checkpoint past a batch (and the plan's rows done, and
   * record the batch's transaction id), inside the batch's own transaction.
   */
  async checkpointRange(name: string, worker: number, lastKey: string[], rows: number, batchSize: number, finished: boolean): Promise<void> {
    await this.client.query(this.checkpointRangeSql(name, worker, lastKey, rows, batchSize, finished));
  }

  /** The statement `checkpointRange` runs, values written as literals. */
  checkpointRangeSql(name: string, worker: number, lastKey: string[], rows: number, batchSize: number, finished: boolean): string {
    return `WITH batch AS (INSERT INTO ${this.s}.backfill_batches (plan, xid) VALUES (${literal(name)}, pg_current_xact_id()) ON CONFLICT DO NOTHING),
            range AS (UPDATE ${this.s}.backfill_ranges SET last_key = ${literal(JSON.stringify(lastKey))}::jsonb, rows_done = rows_done + ${Math.round(rows)},
                             finished_at = ${finished ? 'now()' : 'NULL'}
                       WHERE plan = ${literal(name)} AND worker = ${Math.round(worker)})
       UPDATE ${this.s}.backfill SET rows_done = rows_done + ${Math.round(rows)}, batch_size = ${Math.round(batchSize)}, updated_at = now() WHERE plan = ${literal(name)}`;
  }

  /** The 32-bit ids (as `xmin` shows them) of every committed batch transaction of a plan's backfill. */
  async batchXids(name: string): Promise<string[]> {
    const { rows } = await this.client.query<{ x: string }>(`SELECT pg_catalog.xid(b.xid)::text AS x FROM ${this.s}.backfill_batches b WHERE b.plan = $1`, [
      name,
    ]);
    return rows.map((r) => r.x);
  }

  /** The backfill reached its upper bound. */
  async finishBackfill(name: string): Promise<void> {
    await this.client.query(`UPDATE ${this.s}.backfill SET finished_at = now(), updated_at = now() WHERE plan = $1`, [name]);
  }

  /** Forget the checkpoint (backfill rolled back). */
  async resetBackfill(name: string): Promise<void> {
    await this.client.query(`DELETE FROM ${this.s}.backfill WHERE plan = $1`, [name]);
  }

  /** What the plan's contract archived, or null (never archived, rolled back, or a state schema older than version 9). */
  async archive(name: string): Promise<ArchiveState | null> {
    if (!(await this.exists()) || this.version! < ARCHIVES_VERSION) return null;
    const { rows } = await this.client.query<ArchiveState>(`SELECT ${ARCHIVE_COLUMNS} FROM ${this.s}.archives WHERE plan = $1`, [name]);
    return rows[0] ?? null;
  }

  /** Every plan's archive, by plan name. */
  async allArchives(): Promise<Map<string, ArchiveState>> {
    if (!(await this.exists()) || this.version! < ARCHIVES_VERSION) return new Map();
    const { rows } = await this.client.query<ArchiveState & { plan: string }>(`SELECT plan, ${ARCHIVE_COLUMNS} FROM ${this.s}.archives`);
    return new Map(rows.map(({ plan, ...a }) => [plan, a]));
  }

  /** contract is about to drop these indexes CONCURRENTLY: keep their definitions (once each) for its rollback. */
  async saveArchivedIndexes(name: string, definitions: readonly string[]): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.s}.archives AS a (plan, indexes) VALUES ($1, $2::jsonb)
       ON CONFLICT (plan) DO UPDATE SET indexes = (SELECT coalesce(jsonb_agg(DISTINCT d), '[]') FROM jsonb_array_elements(a.indexes || EXCLUDED.indexes) AS e(d))`,
      [name, JSON.stringify(definitions)],
    );
  }

  /** contract archived `columns` now, to be kept for `keepMs`. */
  async recordArchive(name: string, columns: readonly ArchivedColumn[], keepMs: number): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.s}.archives AS a (plan, columns, archived_at, keep) VALUES ($1, $2::jsonb, now(), make_interval(secs => $3::float8 / 1000))
       ON CONFLICT (plan) DO UPDATE SET columns = EXCLUDED.columns, archived_at = coalesce(a.archived_at, EXCLUDED.archived_at),
         keep = EXCLUDED.keep, refilling = false, purged_at = NULL`,
      [name, JSON.stringify(columns), keepMs],
    );
  }

  /** contract's rollback starts refilling the old columns: from here on the backfill checkpoint is the refill's. */
  async markRefilling(name: string): Promise<void> {
    await this.client.query(`UPDATE ${this.s}.archives SET refilling = true WHERE plan = $1`, [name]);
  }

  /** The archived columns were dropped. */
  async markPurged(name: string): Promise<void> {
    await this.client.query(`UPDATE ${this.s}.archives SET purged_at = now() WHERE plan = $1 AND archived_at IS NOT NULL`, [name]);
  }

  /** contract was rolled back: nothing is archived any more. */
  async forgetArchive(name: string): Promise<void> {
    if (!(await this.exists()) || this.version! < ARCHIVES_VERSION) return;
    await this.client.query(`DELETE FROM ${this.s}.archives WHERE plan = $1`, [name]);
  }
}
