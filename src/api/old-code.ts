import type { ColumnChange } from '../changes/model.js';
import type { Client } from '../db/client.js';
import { ident, type QualifiedName } from '../db/ident.js';
import { OLD_CODE_STATEMENT_CHARS, OLD_CODE_STATEMENTS_SHOWN, OLD_CODE_WRITERS_SHOWN } from '../defaults.js';
import { ExitCode, PgshiftError } from '../errors.js';
import { stateSchemaVersion } from '../state/schema.js';

/** A client session that wrote the old columns, as the server knew it at its latest recorded write. */
export interface OldCodeWriter {
  readonly pid: number;
  readonly applicationName: string | null;
  readonly user: string | null;
  /** null for a Unix-socket connection. */
  readonly clientAddress: string | null;
  /** Its first write of the old columns. */
  readonly firstAt: Date;
  /**
   * Its latest recorded write: the first of the current generation, if it
   * wrote since that started (it records once per generation, see
   * changes/old-code-mark.ts). Behind a pooler the session is a server
   * connection, and the client is the one named here.
   */
  readonly lastAt: Date;
}

/** A statement naming an old column (and no new one) that pg_stat_statements saw run. */
export interface OldCodeStatement {
  readonly query: string;
  readonly user: string | null;
  readonly calls: number;
  /** When pgshift first saw its count grow; for a statement not seen before, the time of this look. */
  readonly seenAt: Date;
}

/** What the old-code gate knows of a plan (see docs/gate-and-drift.md). */
export interface OldCodeActivity {
  /** `guards.old_code_quiet`. */
  readonly quietMs: number;
  /** Client sessions that wrote the old columns since the plan started. */
  readonly sessions: number;
  /** The latest recorded write of the old columns since the plan started. */
  readonly lastWriteAt: Date | null;
  /** The gate's current generation (0: the plan's own start; a plan not yet watched). */
  readonly generation: number;
  /** When the current generation started: writes are looked for since then. */
  readonly watchingSince: Date;
  /** Sessions whose write was recorded since the current generation started; latest first. */
  readonly writers: readonly OldCodeWriter[];
  /** Whether pg_stat_statements could be read in this database. */
  readonly statementsWatched: boolean;
  /** Statements naming an old column seen within the quiet window. */
  readonly statements: readonly OldCodeStatement[];
  /**
   * Old code may still be active: a write was recorded since the generation
   * started, a statement was seen within the quiet window, or the generation
   * is younger than the quiet period (it has not watched long enough to say).
   * `stop-write` and `contract` wait.
   */
  readonly recent: boolean;
}

/** Old code was seen within `guards.old_code_quiet`: stop-write and contract wait. Exit 2. */
export class OldCodeError extends PgshiftError {
  readonly exitCode = ExitCode.invalidInput;
  constructor(
    readonly plan: string,
    readonly phase: string,
    readonly activity: OldCodeActivity,
  ) {
    super(
      `plan "${plan}": old code still uses the old columns, so ${phase} waits: ${describeOldCode(activity)}. ` +
        `Stop that code and wait until nothing was seen for guards.old_code_quiet (${quietPeriod(activity.quietMs)}) ` +
        'after the last look that saw it, ' +
        'or pass --force to go on anyway (recorded in migrate plan log).',
    );
  }
}

/** `guards.old_code_quiet` as the gate's messages print it: in seconds, or in ms below 10 s (a compressed demo or test). */
export function quietPeriod(ms: number): string {
  return ms < 10_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

/** The facts in one line: which sessions wrote since when, the statements, or how long the gate has watched. */
export function describeOldCode(a: OldCodeActivity, now: Date = new Date()): string {
  const parts: string[] = [];
  if (a.writers.length) {
    parts.push(
      `${a.writers.length} client session${a.writers.length === 1 ? '' : 's'} wrote the old columns since ${since(a.watchingSince, now)}: ` +
        a.writers.map((w) => writerText(w, now)).join('; '),
    );
  }
  if (a.statements.length) {
    parts.push(
      `statements naming an old column: ${a.statements.map((s) => `${JSON.stringify(s.query)} (${s.calls} calls${s.user ? ` by ${s.user}` : ''})`).join('; ')}`,
    );
  }
  if (!parts.length && a.recent) {
    parts.push(`no old-code write seen since ${since(a.watchingSince, now)}, which is less than guards.old_code_quiet ago`);
  }
  return parts.join('; ') || 'nothing seen';
}

const secondsAgo = (at: Date, now: Date): number => Math.max(0, Math.round((now.getTime() - at.getTime()) / 1000));

function since(at: Date, now: Date): string {
  return `the gate started watching afresh ${secondsAgo(at, now)} s ago (${at.toISOString()})`;
}

function writerText(w: OldCodeWriter, now: Date): string {
  return [
    `pid ${w.pid}`,
    `application_name ${JSON.stringify(w.applicationName ?? '')}`,
    `user ${w.user ?? '?'}`,
    `address ${w.clientAddress ?? 'local socket'}`,
    `wrote ${secondsAgo(w.lastAt, now)} s ago (${w.lastAt.toISOString()})`,
  ].join(', ');
}

/** What a look needs to know of a plan. */
export interface OldCodeSubject {
  readonly plan: string;
  readonly table: QualifiedName;
  readonly change: ColumnChange;
  readonly startedAt: Date;
  readonly quietMs: number;
}

/** The gate's current generation of a plan and when it started (a plan from before state schema version 8: 0, since its start). */
export interface OldCodeWatch {
  readonly generation: number;
  readonly since: Date;
}

/** Read a plan's watch; generation 0 started when the plan did, which is what the mark of a plan in flight before generations means. */
export async function oldCodeWatch(client: Client, schema: string, plan: string, startedAt: Date): Promise<OldCodeWatch> {
  if ((await stateSchemaVersion(client, schema)) < 8) return { generation: 0, since: startedAt };
  const { rows } = await client.query<{ generation: number; since: Date | null }>(
    `SELECT old_code_generation AS generation, old_code_generation_at AS since FROM ${ident(schema)}.plans WHERE name = $1`,
    [plan],
  );
  return { generation: rows[0]?.generation ?? 0, since: rows[0]?.since ?? startedAt };
}

/**
 * Look for old-code activity: writes recorded since the current generation
 * started, statements seen within the quiet window. With `record`, the
 * runner also stores the pg_stat_statements counts it saw (a statement whose
 * count grew since is seen again) and forgets write records a week old;
 * without it (`status`), nothing is written. A state schema older than
 * version 4 has no records.
 */
export async function lookForOldCode(client: Client, schema: string, subject: OldCodeSubject, record: boolean): Promise<OldCodeActivity> {
  const s = ident(schema);
  const version = await stateSchemaVersion(client, schema);
  const versioned = version >= 4;
  const watch = await oldCodeWatch(client, schema, subject.plan, subject.startedAt);
  const windowMs = subject.quietMs;
  let sessions = 0;
  let lastWriteAt: Date | null = null;
  let writers: OldCodeWriter[] = [];
  if (versioned) {
    // last_at is null for a row recorded before state schema version 8: its first write is its last known one. A
    // session recorded in an earlier life of the plan (rolled back and started again) counts by its latest write.
    const last = version >= 8 ? 'coalesce(w.last_at, w.first_at)' : 'w.first_at';
    const total = await client.query<{ sessions: number; last: Date | null }>(
      `SELECT count(*)::float8 AS sessions, max(${last}) AS last FROM ${s}.old_code_writes w WHERE w.plan = $1 AND ${last} >= $2`,
      [subject.plan, subject.startedAt],
    );
    sessions = total.rows[0]?.sessions ?? 0;
    lastWriteAt = total.rows[0]?.last ?? null;
    if (windowMs > 0) {
      // A write since the generation started, whoever's connection carried it; never whether a session is still connected.
      const recent = await client.query<OldCodeWriter>(
        `SELECT w.pid, w.application_name AS "applicationName", w.usename AS "user", host(w.client_addr) AS "clientAddress",
                w.first_at AS "firstAt", ${last} AS "lastAt"
           FROM ${s}.old_code_writes w
          WHERE w.plan = $1 AND ${last} >= greatest($2::timestamptz, $3::timestamptz)
          ORDER BY ${last} DESC LIMIT ${OLD_CODE_WRITERS_SHOWN}`,
        [subject.plan, subject.startedAt, watch.since],
      );
      writers = recent.rows;
    }
    if (record) {
      // Sessions that wrote nothing for a week tell nothing any gate asks.
      await client.query(`DELETE FROM ${s}.old_code_writes w WHERE ${last} < now() - interval '7 days'`);
    }
  }
  const seen = await statementsNamingOldColumns(client, s, subject, versioned, record);
  const statements = seen === null ? [] : seen.filter((x) => windowMs > 0 && Date.now() - x.seenAt.getTime() <= windowMs).slice(0, OLD_CODE_STATEMENTS_SHOWN);
  // The database's clock, as the generation's start and the records are.
  const { rows: clock } = await client.query<{ young: boolean }>(`SELECT $1::timestamptz > now() - make_interval(secs => $2 / 1000.0) AS young`, [
    watch.since,
    windowMs,
  ]);
  return {
    quietMs: subject.quietMs,
    sessions,
    lastWriteAt,
    generation: watch.generation,
    watchingSince: watch.since,
    writers,
    statementsWatched: seen !== null,
    statements,
    recent: writers.length > 0 || statements.length > 0 || (windowMs > 0 && Boolean(clock[0]?.young)),
  };
}

/** A regular expression matching `name` as a whole word, for PostgreSQL's `~*`. */
function word(name: string): string {
  return `\\m${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\M`;
}

/**
 * Statements in pg_stat_statements (when installed in this database and
 * readable) that read or write (DDL, PREPARE and the like are someone
 * changing the schema, not application code) and name the table and an old
 * column but no new column: old code knows no new column, while pgshift's
 * own statements (backfill, verify) and new code's name new ones. null when pg_stat_statements is not
 * there. A statement is seen when first met, or when its count grew since
 * the snapshot the runner stored.
 */
async function statementsNamingOldColumns(
  client: Client,
  s: string,
  subject: OldCodeSubject,
  versioned: boolean,
  record: boolean,
): Promise<OldCodeStatement[] | null> {
  const { rows: ext } = await client.query<{ schema: string }>(
    `SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'`,
  );
  if (!ext.length) return null;
  const view = `${ident(ext[0]!.schema)}.pg_stat_statements`;
  const olds = subject.change.old.map((c) => word(c.name));
  const news = subject.change.new.map((c) => word(c.name));
  let found: { queryid: string; userid: number; calls: number; query: string; user: string | null }[];
  try {
    ({ rows: found } = await client.query(
      `SELECT queryid::text AS queryid, userid::int8::float8 AS userid, sum(calls)::float8 AS calls, min(query) AS query,
              (SELECT rolname FROM pg_roles r WHERE r.oid = p.userid) AS "user"
         FROM ${view} p
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND query ~* '^\\s*(SELECT|INSERT|UPDATE|DELETE|WITH|MERGE|COPY|TABLE)\\M'
          AND query ~* $1 AND query ~* ANY ($2::text[]) AND NOT query ~* ANY ($3::text[])
        GROUP BY queryid, userid`,
      [word(subject.table.name), olds, news],
    ));
  } catch {
    // Installed in this database but not preloaded (or not readable): nothing to watch.
    return null;
  }
  if (!found.length) return [];
  const { rows: known } = versioned
    ? await client.query<{ queryid: string; userid: number; calls: number; changedAt: Date }>(
        `SELECT queryid::text AS queryid, userid::int8::float8 AS userid, calls::float8 AS calls, changed_at AS "changedAt" FROM ${s}.old_code_statements WHERE plan = $1`,
        [subject.plan],
      )
    : { rows: [] };
  const now = new Date();
  const result = found.map((f): OldCodeStatement & { grew: boolean; key: typeof f } => {
    const k = known.find((x) => x.queryid === f.queryid && x.userid === f.userid);
    const grew = !k || f.calls !== k.calls;
    return { query: f.query, user: f.user, calls: f.calls, seenAt: grew ? now : k.changedAt, grew, key: f };
  });
  if (versioned && record) {
    for (const r of result.filter((x) => x.grew)) {
      // Any role's statement text lands here: what is kept of it is bounded, as old_code_write() bounds what it keeps.
      await client.query(
        `INSERT INTO ${s}.old_code_statements (plan, queryid, userid, calls, query, changed_at)
         VALUES ($1, $2::int8, $3::oid, $4, left($5, ${OLD_CODE_STATEMENT_CHARS}), clock_timestamp())
         ON CONFLICT (plan, queryid, userid) DO UPDATE SET calls = EXCLUDED.calls, query = EXCLUDED.query, changed_at = EXCLUDED.changed_at`,
        [subject.plan, r.key.queryid, r.key.userid, r.calls, r.query],
      );
    }
  }
  return result.sort((a, b) => b.seenAt.getTime() - a.seenAt.getTime()).map(({ query, user, calls, seenAt }) => ({ query, user, calls, seenAt }));
}
