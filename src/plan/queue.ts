import path from 'node:path';
import { outlineOf } from '../changes/kinds/registry.js';
import { PlanError, type PlanProblem } from '../errors.js';
import type { Plan } from './types.js';

/**
 * The order plans ship in: by file name, each after the plans its `after:`
 * names. With `known: false` (a library caller passing some plans, not a
 * folder) an `after:` naming a plan not given is no problem: that plan's
 * state in the database is what `apply` waits for. Plans on one table whose
 * columns overlap (`overlapping`) go one at a time in this order (a plan
 * starts once the ones before it on its columns are contracted); plans on
 * one table with disjoint columns are in flight together. A plan with
 * `after:` also waits for the plans it names, on any table. The order is a
 * stable topological sort: among the plans free to go, the first file name
 * goes first, so a folder without `after:` keeps its file order.
 */
export function releaseOrder(plans: readonly Plan[], options: { readonly known?: boolean } = {}): Plan[] {
  const problems = orderProblems(plans).filter((p) => options.known !== false || !p.message.startsWith('names "'));
  if (problems.length) throw new PlanError(problems);
  const byName = new Map(plans.map((p) => [p.name, p]));
  const byFile = [...plans].sort((a, b) => fileKey(a).localeCompare(fileKey(b)));
  const placed = new Set<string>();
  const ordered: Plan[] = [];
  while (ordered.length < plans.length) {
    // A plan is free once everything it names is placed (orderProblems ruled out cycles, so one always is).
    const next = byFile.find((p) => !placed.has(p.name) && p.after.every((a) => placed.has(a) || !byName.has(a)))!;
    placed.add(next.name);
    ordered.push(next);
  }
  return ordered;
}

/**
 * What makes the order impossible: an `after:` naming a plan that is not in
 * the folder, or naming itself, or plans that wait for each other in a
 * circle (each named with the circle).
 */
export function orderProblems(plans: readonly Plan[]): PlanProblem[] {
  const byName = new Map(plans.map((p) => [p.name, p]));
  const problems: PlanProblem[] = [];
  for (const p of plans) {
    for (const a of p.after) {
      if (a === p.name) problems.push({ file: p.file, path: 'after', message: `a plan cannot ship after itself ("${a}")` });
      else if (!byName.has(a)) problems.push({ file: p.file, path: 'after', message: `names "${a}", which is not a plan in this folder` });
    }
  }
  const reported = new Set<string>();
  for (const p of plans) {
    const circle = circleThrough(p, byName);
    if (!circle || circle.some((n) => reported.has(n))) continue;
    circle.forEach((n) => reported.add(n));
    problems.push({
      file: p.file,
      path: 'after',
      message: `the plans wait for each other in a circle (${[...circle, circle[0]].join(' → ')}), so none can start; remove one "after:"`,
    });
  }
  return problems;
}

/** The names on a circle of `after:` through `start`, or null. */
function circleThrough(start: Plan, byName: ReadonlyMap<string, Plan>): string[] | null {
  const trail: string[] = [];
  const seen = new Set<string>();
  const walk = (p: Plan): string[] | null => {
    trail.push(p.name);
    seen.add(p.name);
    for (const a of p.after) {
      if (a === start.name && a !== p.name) return [...trail];
      const next = byName.get(a);
      if (next && a !== p.name && !seen.has(a)) {
        const found = walk(next);
        if (found) return found;
      }
    }
    trail.pop();
    return null;
  };
  return walk(start);
}

/**
 * Every column a plan reads, writes, adds or drops, from its kind's
 * `outline()`: what it claims on its table while in flight.
 */
export function planColumns(plan: Plan): string[] | null {
  const outline = outlineOf(plan.change);
  const columns = [...new Set([...outline.reads, ...outline.adds.map((a) => a.name)])].sort();
  // A kind that names no column changes the table as a whole (a rename-table): it claims all of it.
  return columns.length ? columns : null;
}

/** The claim of a plan on its whole table, recorded beside every column it has (see apply). */
export const WHOLE_TABLE = '*';

/** What a plan claims when it goes into flight: its columns, or the whole table and every column it has. */
export function claimedColumns(plan: Plan, facts: { readonly columns: readonly { readonly name: string }[] }): string[] {
  return planColumns(plan) ?? [WHOLE_TABLE, ...facts.columns.map((c) => c.name)];
}

/** Two column lists share a column (null, or a claim on the whole table, overlaps everything). */
export function overlapping(a: readonly string[] | null, b: readonly string[] | null): boolean {
  return a === null || b === null || a.includes(WHOLE_TABLE) || b.includes(WHOLE_TABLE) || a.some((c) => b.includes(c));
}

function fileKey(p: Plan): string {
  return p.file ? path.basename(p.file) : p.name;
}
