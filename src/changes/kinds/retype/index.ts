import { display } from '../../../db/ident.js';
import type { PlanFacts, RetypeFacts } from '../../model.js';
import { declaredUnique, needTargets, oldFacts, proposed, type ChangeKindModule } from '../kind.js';
import { canonicalType } from '../new-column.js';
import { metadataOnlyRetypeProgram } from './in-place.js';
import { probeRetype } from './probe.js';
import { retypedColumn, retypeSchema } from './spec.js';

/**
 * `retype: { column, to, using, reverse, as? }`: one column to another type.
 * `using` is written over the old column and `reverse` over the new value,
 * both by the column's own name, so `price::numeric` and `price::text` read
 * naturally. NOT NULL is carried unless `not_null` says otherwise; a default
 * and UNIQUE are declared, since the old ones were written for another type.
 * When PostgreSQL can change the type in place (see `RetypeFacts`), the
 * program is one catalog-only statement instead.
 */
export const retype = {
  name: 'retype',
  summary: "change a column's type",
  usage: 'the new type: plan new retype table.column "numeric(10,2)"',
  schema: retypeSchema,
  carries: false,
  inverse: true,
  outline: (change) => ({
    reads: [change.column],
    adds: [{ name: retypedColumn(change), type: change.to, field: 'retype.to', exprName: change.column }],
    expressions: [
      { field: 'retype.using', sql: change.using, over: 'old', gives: retypedColumn(change) },
      { field: 'retype.reverse', sql: change.reverse, over: 'new', gives: change.column },
    ],
  }),
  /** Whether PostgreSQL can change the type in place; otherwise what the copy leaves behind, for `plan show`. */
  learn: async (change, { client, table, tableFacts, objects, views, newType }) => {
    const found = objects.get(change.column)!;
    // ALTER COLUMN … TYPE refuses a column a view reads; the copy lets the views move over at stop-write.
    const probe: RetypeFacts = views.length
      ? { metadataOnly: false, reverseMetadataOnly: false, reason: 'views read the column; they move to the new column at stop-write' }
      : await probeRetype(client, table, tableFacts, change, newType, found);
    const notCarried = [...found.indexes.map((i) => `index ${i.name}`), ...found.constraints.map((c) => `constraint ${c.name} on ${display(c.table)}`)];
    return { problems: [], facts: { retype: probe.metadataOnly ? probe : { ...probe, notCarried } } };
  },
  resolve: (change, facts) => {
    const old = oldFacts(facts, change.column);
    const name = retypedColumn(change);
    return {
      old: [{ name: old.name, type: old.type, notNull: old.notNull, default: old.default, reverse: change.reverse }],
      new: [
        {
          name,
          type: canonicalType(facts, name),
          collation: null,
          forward: change.using,
          notNull: change.not_null ?? old.notNull,
          default: change.default ?? null,
          defaultFrom: 'switch-read',
          unique: !!change.unique,
          uniqueWith: typeof change.unique === 'object' ? change.unique.with : undefined,
          exprName: change.column,
        },
      ],
    };
  },
  program: (change, facts) => (facts.retype?.metadataOnly ? metadataOnlyRetypeProgram(change, facts) : undefined),
  uniques: (change) => declaredUnique('retype.unique', retypedColumn(change), change.unique),
  /** A cast each way (`castBack` false: the server had none for one direction, left to a person). */
  propose(request) {
    needTargets(request, 1, this.usage);
    const first = request.old[0]!;
    const to = request.targets[0]!;
    return {
      column: first.name,
      to,
      as: `${first.name}_new`,
      using: proposed(request.castBack ? `${first.name}::${to}` : null, to),
      reverse: proposed(request.castBack ? `${first.name}::${first.type}` : null, first.type),
    };
  },
} satisfies ChangeKindModule<'retype', typeof retypeSchema, Pick<PlanFacts, 'retype'>>;
