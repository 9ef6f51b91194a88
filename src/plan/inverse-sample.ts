import type { PlanFacts } from '../changes/model.js';
import { kindOf, resolveChange } from '../changes/kinds/registry.js';
import { SAFE_SEARCH_PATH } from '../changes/sql-objects.js';
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
 * plan's statement_timeout; a rename has nothing to check. It evaluates the
 * plan's expressions as the runner, which a read-only transaction does not
 * make harmless (`COPY … TO PROGRAM` runs in one): it is reached only once
 * the catalog check found every function, operator and type they bind owned
 * by a trusted role (expression-owners.ts), and it evaluates them as printed
 * then, under `search_path = pg_catalog, pg_temp`.
 */
export async function sampleInverse(client: Client, plan: Plan, facts: PlanFacts): Promise<InverseSample | null> {
  if (!kindOf(plan.change).inverse) return null;
  const change = resolveChange(plan.change, facts);
  // The expressions as PostgreSQL printed them at the check, every name bound (and its owner checked:
  // expression-owners.ts), evaluated under the fixed search_path, so the sample runs only what the plan will run.
  const inline = facts.inline;
  const forwardOf = (c: (typeof change.new)[number], i: number): string =>
    inline ? `(${inline.forward[i]})::${inline.newTypes[i]}` : `(${c.forward})::${c.type}`;
  const reverseOf = (c: (typeof change.old)[number], i: number): string =>
    inline ? `(${inline.reverse[i]})::${inline.oldTypes[i]}` : `(${c.reverse})::${c.type}`;
  const keys = facts.key.map((k, i) => ({ name: k.name, alias: ident(`__k${i}`) }));
  const old = change.old.map((c, i) => ({ ...c, alias: ident(`__o${i}`), back: ident(`__b${i}`) }));
  const fresh = change.new.map((c, i) => ({ ...c, alias: ident(`__n${i}`) }));
  // Each level exposes only the names its expressions may use, so a retype's
  // old and new column (one name) never meet in one scope.
  const sample = `SELECT ${[...keys.map((k) => `${ident(k.name)} AS ${k.alias}`), ...old.map((c) => ident(c.name))].join(', ')} FROM ${qualified(facts.table)} LIMIT ${INVERSE_SAMPLE_ROWS}`;
  const forward = `SELECT ${[...keys.map((k) => k.alias), ...old.map((c) => `${ident(c.name)} AS ${c.alias}`), ...fresh.map((c, i) => `${forwardOf(c, i)} AS ${c.alias}`)].join(', ')} FROM (${sample}) s`;
  const renamed = `SELECT ${[...keys.map((k) => k.alias), ...old.map((c) => c.alias), ...fresh.map((c) => `${c.alias} AS ${ident(c.exprName ?? c.name)}`)].join(', ')} FROM (${forward}) f`;
  const back = `SELECT ${[...keys.map((k) => k.alias), ...old.map((c) => c.alias), ...old.map((c, i) => `${reverseOf(c, i)} AS ${c.back}`)].join(', ')} FROM (${renamed}) g`;
  const differs = `ROW(${old.map((c) => c.alias).join(', ')}) IS DISTINCT FROM ROW(${old.map((c) => c.back).join(', ')})`;
  const text = (cols: readonly string[]): string => (cols.length === 1 ? `${cols[0]}::text` : `ROW(${cols.join(', ')})::text`);
  const sql = `SELECT count(*)::int AS sampled, count(*) FILTER (WHERE ${differs})::int AS differing,
      (array_agg(json_build_object('key', ${text(keys.map((k) => k.alias))}, 'old', ${text(old.map((c) => c.alias))}, 'back', ${text(old.map((c) => c.back))})) FILTER (WHERE ${differs}))[1:3] AS examples
    FROM (${back}) b`;
  return withRolledBackTransaction(
    client,
    async () => {
      await client.query(`SELECT pg_catalog.set_config('statement_timeout', $1, true), pg_catalog.set_config('search_path', $2, true)`, [
        `${plan.guards.statementTimeoutMs}ms`,
        inline ? SAFE_SEARCH_PATH : facts.searchPath,
      ]);
      const { rows } = await client.query<{ sampled: number; differing: number; examples: { key: string; old: string; back: string }[] | null }>(sql);
      const row = rows[0]!;
      return { sampled: row.sampled, differing: row.differing, examples: row.examples ?? [] };
    },
    { readOnly: true },
  );
}
