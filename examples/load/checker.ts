import type pg from 'pg';
import type { ColumnChange } from '../../src/changes/model.js';
import { resolveChange } from '../../src/changes/kinds/registry.js';
import { withTransaction } from '../../src/db/client.js';
import { ident, literal, qualified } from '../../src/db/ident.js';
import { DEFAULT_STATE_SCHEMA } from '../../src/defaults.js';
import type { Plan } from '../../src/plan/types.js';
import { StateStore } from '../../src/state/store.js';
import type { Side } from '../app/types.js';
import type { WriteRecord } from './workload.js';

/** A row that does not hold what its last acknowledged write put there. */
export interface Finding {
  readonly id: string;
  readonly kind: 'lost' | 'wrong';
  /** The window and release of the last write ('seed' for a row never written during the run). */
  readonly window: string;
  readonly version: string;
  /** Writes the row may hold one of: 1, or every write of a hot row (then `expected` shows the last acknowledged). */
  readonly candidates: number;
  readonly expected: Record<string, string | null>;
  readonly actual: Record<string, string | null> | null;
}

export interface CheckResult {
  /** Rows compared: every seed row and every row the clients wrote. */
  readonly rows: number;
  /** Of those, hot rows written by several clients (several acceptable values). */
  readonly sharedRows: number;
  /** The plan's sides the final schema has (both mid-flight, one at either end). */
  readonly sides: readonly Side[];
  /** How many rows are lost or wrong (exact). */
  readonly failed: number;
  /** Lost or wrong rows by the window of their last write. */
  readonly failedByWindow: Readonly<Record<string, number>>;
  /** The first of them, by id. */
  readonly findings: readonly Finding[];
}

/** Seed rows 1..rows, each written on the old side with these values (SQL over `g`). */
export interface Seed {
  readonly rows: number;
  readonly columns: Readonly<Record<string, string>>;
}

/** Findings shown at most; the count is exact whatever this is. */
const MAX_FINDINGS = 1_000;

/**
 * Read every acknowledged write back through the table as it is now and
 * compare it with what the client wrote: a row's last write, or for a hot row
 * that several clients wrote at once, one of its writes as a whole. A write on the side the table no
 * longer has is mapped through the plan's own expressions (`using` from old to
 * new, `reverse` from new to old), as resolved from the facts pgshift
 * recorded when the plan started; columns outside the plan (email) must hold
 * exactly what was written.
 */
export async function checkWrites(
  client: pg.Client,
  plan: Plan,
  writes: readonly WriteRecord[],
  seed: Seed,
  stateSchema = DEFAULT_STATE_SCHEMA,
): Promise<CheckResult> {
  const state = await new StateStore(client, stateSchema).get(plan.name);
  if (!state) throw new Error(`plan "${plan.name}" never started: nothing to check against`);
  const { facts } = state;
  const change = resolveChange(plan.change, facts);
  const key = facts.key.length === 1 ? facts.key[0]!.name : null;
  if (!key) throw new Error(`the checker needs a one-column key; ${qualified(facts.table)} has ${facts.key.length}`);
  const table = qualified(facts.table);
  const { rows: present } = await client.query<{ name: string }>(
    `SELECT attname AS name FROM pg_attribute WHERE attrelid = ${literal(table)}::regclass AND attnum > 0 AND NOT attisdropped`,
  );
  const columns = new Set(present.map((r) => r.name));
  const sides = (['old', 'new'] as const).filter((s) => change[s].every((c) => columns.has(c.name)));

  // A row one client owns must hold its last acknowledged write; a hot row, any one of its writes, whole.
  const candidates = new Map<string, WriteRecord[]>();
  for (const w of writes) {
    const list = candidates.get(w.id);
    if (list && w.shared) list.push(w);
    else candidates.set(w.id, [w]);
  }
  const written = [...candidates.values()].flat();
  const planColumns = new Set([...change.old, ...change.new].map((c) => c.name));
  const extras = [...new Set([...Object.keys(seed.columns), ...written.flatMap((w) => Object.keys(w.row))])].filter(
    (c) => !planColumns.has(c) && columns.has(c),
  );

  const expected: string[] = [];
  const actual: string[] = [];
  for (const side of sides) {
    for (const [i, c] of change[side].entries()) {
      expected.push(literal(c.name), `CASE e.side WHEN ${literal(side)} THEN e.row ->> ${literal(c.name)} ELSE ${derived(change, side, i)} END`);
      actual.push(literal(c.name), `t.${ident(c.name)}::text`);
    }
  }
  for (const c of extras) {
    expected.push(literal(c), `CASE WHEN e.row ? ${literal(c)} THEN e.row ->> ${literal(c)} ELSE t.${ident(c)}::text END`);
    actual.push(literal(c), `t.${ident(c)}::text`);
  }

  return withTransaction(client, async () => {
    await client.query(
      `CREATE TEMP TABLE pgshift_expected (id bigint, seq int, side text NOT NULL, win text NOT NULL, version text NOT NULL, row jsonb NOT NULL,
         PRIMARY KEY (id, seq)) ON COMMIT DROP`,
    );
    await client.query(
      `INSERT INTO pgshift_expected SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, seq int, side text, win text, version text, row jsonb)`,
      [JSON.stringify(written.map((w, seq) => ({ id: w.id, seq: seq + 1, side: w.side, win: w.window, version: w.version, row: w.row })))],
    );
    // A seed row nobody wrote must still hold its seed values, through the backfill.
    const seedRow = Object.entries(seed.columns).flatMap(([name, sql]) => [literal(name), `(${sql})::text`]);
    await client.query(
      `INSERT INTO pgshift_expected SELECT g, 0, 'old', 'seed', 'seed', jsonb_build_object(${seedRow.join(', ')}) FROM generate_series(1, $1::bigint) g
        WHERE NOT EXISTS (SELECT 1 FROM pgshift_expected w WHERE w.id = g)`,
      [seed.rows],
    );
    await client.query(
      `CREATE TEMP TABLE pgshift_verdict ON COMMIT DROP AS
       SELECT id::text AS id, bool_or(lost) AS lost, bool_or(NOT lost AND expected IS NOT DISTINCT FROM actual) AS ok, count(*)::int AS candidates,
              (array_agg(win ORDER BY seq DESC))[1] AS win, (array_agg(version ORDER BY seq DESC))[1] AS version,
              (array_agg(expected ORDER BY seq DESC))[1] AS expected, (array_agg(actual))[1] AS actual
         FROM (SELECT e.id, e.seq, e.win, e.version, t.${ident(key)} IS NULL AS lost,
                      jsonb_build_object(${expected.join(', ')}) AS expected,
                      CASE WHEN t.${ident(key)} IS NOT NULL THEN jsonb_build_object(${actual.join(', ')}) END AS actual
                 FROM pgshift_expected e LEFT JOIN ${table} t ON t.${ident(key)} = e.id) c
        GROUP BY id`,
    );
    const { rows } = await client.query<{
      id: string;
      win: string;
      version: string;
      lost: boolean;
      candidates: number;
      expected: Finding['expected'];
      actual: Finding['actual'];
    }>(`SELECT * FROM pgshift_verdict WHERE NOT ok ORDER BY id::bigint LIMIT ${MAX_FINDINGS}`);
    const count = await client.query<{ n: number; failed: number; hot: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE NOT ok)::int AS failed, count(*) FILTER (WHERE candidates > 1)::int AS hot FROM pgshift_verdict`,
    );
    const byWindow = await client.query<{ win: string; n: number }>(`SELECT win, count(*)::int AS n FROM pgshift_verdict WHERE NOT ok GROUP BY win`);
    return {
      rows: count.rows[0]?.n ?? 0,
      sharedRows: count.rows[0]?.hot ?? 0,
      failed: count.rows[0]?.failed ?? 0,
      failedByWindow: Object.fromEntries(byWindow.rows.map((r) => [r.win, r.n])),
      sides,
      findings: rows.map((r) => ({
        id: r.id,
        kind: r.lost ? ('lost' as const) : ('wrong' as const),
        window: r.win,
        version: r.version,
        candidates: r.candidates,
        expected: r.expected,
        actual: r.actual,
      })),
    };
  });
}

/**
 * SQL for column `index` of `side`, computed from a write made on the other
 * side: the plan's expression, evaluated over that write's values typed as
 * the columns they were written to.
 */
function derived(change: ColumnChange, side: Side, index: number): string {
  const from = side === 'new' ? change.old : change.new;
  const target = change[side][index]!;
  const expression = side === 'new' ? change.new[index]!.forward : change.old[index]!.reverse;
  const inputs = from.map((c) => `(e.row ->> ${literal(c.name)})::${c.type} AS ${ident(c.name)}`).join(', ');
  return `(SELECT ((${expression})::${target.type})::text FROM (SELECT ${inputs}) AS written)`;
}
