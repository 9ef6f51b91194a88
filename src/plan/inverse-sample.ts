import type { PlanFacts } from '../changes/model.js';
import { kindOf, resolveChange } from '../changes/kinds/registry.js';
import { withRolledBackTransaction, type Client } from '../db/client.js';
import { ident, qualified } from '../db/ident.js';
import { INVERSE_SAMPLE_ROWS } from '../defaults.js';
import type { Plan } from './types.js';

/** What the sample showed: rows whose old value does not come back through `using` then `reverse`. */
export interface InverseSample {
  readonly sampled: number;
  readonly differing: number;
  /** A few of them: the key, the old value, and what came back. */
  readonly examples: readonly { key: string; old: string; back: string }[];
}

/**
 * Take up to `INVERSE_SAMPLE_ROWS` real rows and check that `reverse` gives
 * back each old value from what `using` made of it. A split or merge that
 * loses information (two spaces in a name) passes the type checks but
 * changes what old code reads once new code writes: a warning, not an
 * error, since some plans lose on purpose. Read-only, rolled back, under the
 * plan's statement_timeout; a rename has nothing to check.
 */
export async function sampleInverse(client: Client, plan: Plan, facts: PlanFacts): Promise<InverseSample | null> {
  if (!kindOf(plan.change).inverse) return null;
  const change = resolveChange(plan.change, facts);
  const keys = facts.key.map((k, i) => ({ name: k.name, alias: ident(`__k${i}`) }));
  const old = change.old.map((c, i) => ({ ...c, alias: ident(`__o${i}`), back: ident(`__b${i}`) }));
  const fresh = change.new.map((c, i) => ({ ...c, alias: ident(`__n${i}`) }));
  // Each level exposes only the names its expressions may use, so a retype's
  // old and new column (one name) never meet in one scope.
  const sample = `SELECT ${[...keys.map((k) => `${ident(k.name)} AS ${k.alias}`), ...old.map((c) => ident(c.name))].join(', ')} FROM ${qualified(facts.table)} LIMIT ${INVERSE_SAMPLE_ROWS}`;
  const forward = `SELECT ${[...keys.map((k) => k.alias), ...old.map((c) => `${ident(c.name)} AS ${c.alias}`), ...fresh.map((c) => `(${c.forward})::${c.type} AS ${c.alias}`)].join(', ')} FROM (${sample}) s`;
  const renamed = `SELECT ${[...keys.map((k) => k.alias), ...old.map((c) => c.alias), ...fresh.map((c) => `${c.alias} AS ${ident(c.exprName ?? c.name)}`)].join(', ')} FROM (${forward}) f`;
  const back = `SELECT ${[...keys.map((k) => k.alias), ...old.map((c) => c.alias), ...old.map((c) => `(${c.reverse})::${c.type} AS ${c.back}`)].join(', ')} FROM (${renamed}) g`;
  const differs = `ROW(${old.map((c) => c.alias).join(', ')}) IS DISTINCT FROM ROW(${old.map((c) => c.back).join(', ')})`;
  const text = (cols: readonly string[]): string => (cols.length === 1 ? `${cols[0]}::text` : `ROW(${cols.join(', ')})::text`);
  const sql = `SELECT count(*)::int AS sampled, count(*) FILTER (WHERE ${differs})::int AS differing,
      (array_agg(json_build_object('key', ${text(keys.map((k) => k.alias))}, 'old', ${text(old.map((c) => c.alias))}, 'back', ${text(old.map((c) => c.back))})) FILTER (WHERE ${differs}))[1:3] AS examples
    FROM (${back}) b`;
  return withRolledBackTransaction(
    client,
    async () => {
      await client.query(`SELECT set_config('statement_timeout', $1, true), set_config('search_path', $2, true)`, [
        `${plan.guards.statementTimeoutMs}ms`,
        facts.searchPath,
      ]);
      const { rows } = await client.query<{ sampled: number; differing: number; examples: { key: string; old: string; back: string }[] | null }>(sql);
      const row = rows[0]!;
      return { sampled: row.sampled, differing: row.differing, examples: row.examples ?? [] };
    },
    { readOnly: true },
  );
}
