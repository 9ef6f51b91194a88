import type { z } from 'zod';
import type { ChangeOutline, ColumnChange, PlanFacts } from '../model.js';
import type { ChangeKindModule } from './kind.js';
import { constrain } from './constrain/index.js';
import { add } from './add/index.js';
import { drop } from './drop/index.js';
import { index } from './index/index.js';
import { merge } from './merge/index.js';
import { rename } from './rename/index.js';
import { renameTable } from './rename-table/index.js';
import { retype } from './retype/index.js';
import { split } from './split/index.js';

/**
 * Every change kind, in the order the docs present them. The plan file
 * format, the `Change` type and parsing are derived from this list: adding
 * a kind is its module and one line here.
 */
export const KINDS = [rename, split, merge, retype, drop, constrain, add, index, renameTable] as const;

type Kind = (typeof KINDS)[number];
export type ChangeKind = Kind['name'];
export const CHANGE_KINDS = KINDS.map((k) => k.name) as readonly ChangeKind[];

/** The change a plan makes, tagged by kind: `{ kind: 'rename', column, to }`, … */
export type Change = { [K in Kind as K['name']]: { readonly kind: K['name'] } & z.output<K['schema']> }[ChangeKind];

/** Each kind's schema, optional, under its name: the kinds' part of the plan file format. */
export const kindFields = Object.fromEntries(KINDS.map((k) => [k.name, k.schema.optional()])) as { [K in Kind as K['name']]: z.ZodOptional<K['schema']> };

/** A kind's module, its methods taking any change (the one of its kind). */
type AnyKind = ChangeKindModule<ChangeKind, z.ZodType<Change>>;

export function kindOf(change: Change): AnyKind {
  return KINDS.find((k) => k.name === change.kind) as unknown as AnyKind;
}

export function kindNamed(name: ChangeKind): AnyKind {
  return KINDS.find((k) => k.name === name) as unknown as AnyKind;
}

/** What a change needs from the catalog. */
export function outlineOf(change: Change): ChangeOutline {
  return kindOf(change).outline(change);
}

/** The old and new columns of a change, given the facts recorded at start. */
export function resolveChange(change: Change, facts: PlanFacts): ColumnChange {
  return kindOf(change).resolve(change, facts);
}

export function isChangeKind(name: string): name is ChangeKind {
  return (CHANGE_KINDS as readonly string[]).includes(name);
}
