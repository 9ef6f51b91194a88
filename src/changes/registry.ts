import type { Change } from '../plan/types.js';
import type { ChangeKind } from '../plan/schema.js';
import type { ChangeKindDefinition, ChangeOutline, ColumnChange, PlanFacts } from './model.js';
import { merge } from './merge.js';
import { rename } from './rename.js';
import { retype } from './retype.js';
import { split } from './split.js';

type SpecOf<K extends ChangeKind> = Omit<Extract<Change, { kind: K }>, 'kind'>;

/** Every change kind, by name; a kind without an entry fails the type check. */
export const CHANGE_KIND_DEFINITIONS: { readonly [K in ChangeKind]: ChangeKindDefinition<SpecOf<K>> } = {
  rename,
  split,
  merge,
  retype,
};

function definitionOf(change: Change): ChangeKindDefinition<Change> {
  return CHANGE_KIND_DEFINITIONS[change.kind] as unknown as ChangeKindDefinition<Change>;
}

/** What a change needs from the catalog. */
export function outlineOf(change: Change): ChangeOutline {
  return definitionOf(change).outline(change);
}

/** The old and new columns of a change, given the facts recorded at start. */
export function resolveChange(change: Change, facts: PlanFacts): ColumnChange {
  return definitionOf(change).resolve(change, facts);
}
