import type { NewColumnSpec } from './fields.js';
import type { NewColumn, PlanFacts } from '../model.js';

/** A declared new column (split, merge) with its canonical type. */
export function newColumnFrom(spec: NewColumnSpec, facts: PlanFacts): NewColumn {
  return {
    name: spec.name,
    type: canonicalType(facts, spec.name),
    collation: null,
    forward: spec.using,
    notNull: spec.not_null ?? false,
    default: spec.default ?? null,
    defaultFrom: 'switch-read',
    unique: !!spec.unique,
    uniqueWith: typeof spec.unique === 'object' ? spec.unique.with : undefined,
  };
}

/** The canonical type recorded for a new column at validation. */
export function canonicalType(facts: PlanFacts, column: string): string {
  const type = facts.newTypes[column];
  if (!type) throw new Error(`no canonical type recorded for new column ${column}`);
  return type;
}
