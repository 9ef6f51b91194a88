import { z } from 'zod';
import { display, ident, objectName, qualified } from '../../../db/ident.js';
import { needTargets, type ChangeKindModule, type KindProblem } from '../kind.js';
import { identifier, sqlExpression } from '../fields.js';
import { existingIndex, probeDefinition, type IndexDefinition } from './catalog.js';
import { indexProgram } from './program.js';

const schema = z.strictObject({
  /** The index the plan builds (or, with `drop`, drops), in the table's schema. */
  name: identifier,
  /** Key columns, in order; or `expression`. */
  columns: z.array(identifier).min(1, 'must name at least one column').optional(),
  /** The key list as SQL, e.g. `lower(email)`; or `columns`. */
  expression: sqlExpression.optional(),
  unique: z.boolean().optional(),
  /** The access method (default btree). */
  method: z.enum(['btree', 'hash', 'gist', 'spgist', 'gin', 'brin']).optional(),
  /** A partial index's predicate. */
  where: sqlExpression.optional(),
  /** An index of the table this one replaces: dropped CONCURRENTLY at contract (the new one takes its name when `name` is the same). */
  replaces: identifier.optional(),
  /** Drop the existing index `name` CONCURRENTLY at contract instead of building one. */
  drop: z.literal(true).optional(),
});

type IndexSpec = z.output<typeof schema>;

/** What an index plan learns at plan start, kept in the plan's facts under `index`. */
export interface IndexFacts {
  readonly index: {
    /** The index to build as PostgreSQL printed it (null for a drop). */
    readonly build: IndexDefinition | null;
    /** The index replaced or dropped, as it was: contract's rollback builds it again (null when there is none). */
    readonly old: (IndexDefinition & { readonly name: string }) | null;
  };
}

/** The name the new index is built under: its own, unless that is still the replaced index's (then swapped at contract). */
export function buildName(spec: IndexSpec): string {
  return spec.replaces === spec.name ? objectName(spec.name, 'pgshift_new') : spec.name;
}

const BUILD_FIELDS = ['columns', 'expression', 'unique', 'method', 'where', 'replaces'] as const;

/**
 * `index: { name, columns | expression, unique?, method?, where?, replaces? }`
 * or `index: { name, drop: true }`: an index built, replaced or dropped
 * without blocking writes. It changes no column, so it has a program of its
 * own (`program.ts`): expand builds the index CONCURRENTLY, contract drops
 * what it replaces (or the index a drop names) CONCURRENTLY; the four
 * phases between do nothing.
 */
export const index = {
  name: 'index',
  summary: 'build, replace or drop an index without blocking writes',
  usage: 'plan new index table.col1[,col2…] index_name',
  schema,
  carries: false,
  inverse: false,
  // The columns are checked by learn, not listed as read: the plan changes none of them (a key or partition-key column may be indexed).
  outline: () => ({ reads: [], adds: [], expressions: [] }),
  check: (spec) => {
    const problems: KindProblem[] = [];
    if (spec.drop) {
      for (const f of BUILD_FIELDS.filter((f) => spec[f] !== undefined))
        problems.push({ path: `index.${f}`, message: 'a drop builds nothing; remove it (or remove index.drop)' });
      return problems;
    }
    if ((spec.columns === undefined) === (spec.expression === undefined))
      problems.push({ path: 'index', message: 'give the index its keys: either index.columns or index.expression, not both' });
    return problems;
  },
  learn: async (spec, { client, table, tableFacts }) => {
    const problems: KindProblem[] = [];
    const { rows: kind } = await client.query<{ partitioned: boolean }>(`SELECT relkind = 'p' AS partitioned FROM pg_catalog.pg_class WHERE oid = $1`, [
      tableFacts.oid,
    ]);
    if (kind[0]?.partitioned)
      problems.push({
        path: 'index',
        message: `${display(table)} is partitioned, and PostgreSQL builds and drops a partitioned index CONCURRENTLY only partition by partition; the index kind does not do that yet`,
      });
    for (const c of spec.columns ?? [])
      if (!tableFacts.columns.some((f) => f.name === c)) problems.push({ path: 'index.columns', message: `column "${c}" does not exist in ${display(table)}` });
    if (problems.length) return { problems, facts: { index: { build: null, old: null } } };

    const oldName = spec.drop ? spec.name : spec.replaces;
    let old: IndexFacts['index']['old'] = null;
    if (oldName !== undefined) {
      const found = await existingIndex(client, table, oldName, spec.drop ? 'index.name' : 'index.replaces');
      if ('path' in found) problems.push(found);
      else old = { name: found.name, unique: found.unique, definition: found.definition };
    }
    let build: IndexDefinition | null = null;
    if (!spec.drop) {
      for (const name of new Set([spec.name, buildName(spec)]).values()) {
        if (name === spec.replaces) continue;
        const { rows } = await client.query<{ taken: boolean }>(`SELECT pg_catalog.to_regclass($1) IS NOT NULL AS taken`, [
          qualified({ schema: table.schema, name }),
        ]);
        if (rows[0]!.taken) problems.push({ path: 'index.name', message: `${display({ schema: table.schema, name })} already exists; pick another name` });
      }
      const keys = spec.columns ? spec.columns.map(ident).join(', ') : spec.expression!;
      const probed = await probeDefinition(client, table, { unique: spec.unique ?? false, method: spec.method, keys, where: spec.where });
      if (typeof probed === 'string')
        problems.push({
          path: spec.where === undefined ? `index.${spec.columns ? 'columns' : 'expression'}` : 'index',
          message: probed,
        });
      else build = probed;
    }
    return { problems, facts: { index: { build, old } } };
  },
  resolve: () => ({ old: [], new: [] }),
  program: (spec, facts) => indexProgram(facts.table, spec.name, buildName(spec), facts.index ?? { build: null, old: null }),
  uniques: () => [],
  propose(request) {
    needTargets(request, 1, this.usage);
    return { name: request.targets[0]!, columns: request.old.map((c) => c.name), unique: false };
  },
} satisfies ChangeKindModule<'index', typeof schema, IndexFacts>;
