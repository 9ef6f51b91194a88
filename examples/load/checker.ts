import type pg from 'pg';
import type { ColumnChange } from '../../src/changes/model.js';
import { resolveChange } from '../../src/changes/registry.js';
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
  readonly expected: Record<string, string | null>;
  readonly actual: Record<string, string | null> | null;
}

export interface CheckResult {
  /** Rows compared: every seed row and every row the clients wrote. */
  readonly rows: number;
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
 * compare it with what the client wrote. A write on the side the table no
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

  // Each row is written by one client only, so its last record is its last acknowledged write.
  const last = new Map<string, WriteRecord>();
  for (const w of writes) last.set(w.id, w);
  const planColumns = new Set([...change.old, ...change.new].map((c) => c.name));
  const extras = [...new Set([...Object.keys(seed.columns), ...[...last.values()].flatMap((w) => Object.keys(w.row))])].filter(
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
      `CREATE TEMP TABLE pgshift_expected (id bigint PRIMARY KEY, side text NOT NULL, win text NOT NULL, version text NOT NULL, row jsonb NOT NULL) ON COMMIT DROP`,
    );
    const seedRow = Object.entries(seed.columns).flatMap(([name, sql]) => [literal(name), `(${sql})::text`]);
    await client.query(
      `INSERT INTO pgshift_expected SELECT g, 'old', 'seed', 'seed', jsonb_build_object(${seedRow.join(', ')}) FROM generate_series(1, $1::bigint) g`,
      [seed.rows],
    );
    await client.query(
      `INSERT INTO pgshift_expected SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, side text, win text, version text, row jsonb)
       ON CONFLICT (id) DO UPDATE SET side = EXCLUDED.side, win = EXCLUDED.win, version = EXCLUDED.version, row = EXCLUDED.row`,
      [JSON.stringify([...last.values()].map((w) => ({ id: w.id, side: w.side, win: w.window, version: w.version, row: w.row })))],
    );
    const compared = `
      SELECT e.id::text AS id, e.win, e.version, t.${ident(key)} IS NULL AS lost,
             jsonb_build_object(${expected.join(', ')}) AS expected,
             CASE WHEN t.${ident(key)} IS NOT NULL THEN jsonb_build_object(${actual.join(', ')}) END AS actual
        FROM pgshift_expected e LEFT JOIN ${table} t ON t.${ident(key)} = e.id`;
    const { rows } = await client.query<{ id: string; win: string; version: string; lost: boolean; expected: Finding['expected']; actual: Finding['actual'] }>(
      `SELECT * FROM (${compared}) c WHERE lost OR expected IS DISTINCT FROM actual ORDER BY id::bigint LIMIT ${MAX_FINDINGS}`,
    );
    const count = await client.query<{ n: number; failed: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE lost OR expected IS DISTINCT FROM actual)::int AS failed FROM (${compared}) c`,
    );
    const byWindow = await client.query<{ win: string; n: number }>(
      `SELECT win, count(*)::int AS n FROM (${compared}) c WHERE lost OR expected IS DISTINCT FROM actual GROUP BY win`,
    );
    return {
      rows: count.rows[0]?.n ?? 0,
      failed: count.rows[0]?.failed ?? 0,
      failedByWindow: Object.fromEntries(byWindow.rows.map((r) => [r.win, r.n])),
      sides,
      findings: rows.map((r) => ({
        id: r.id,
        kind: r.lost ? ('lost' as const) : ('wrong' as const),
        window: r.win,
        version: r.version,
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
