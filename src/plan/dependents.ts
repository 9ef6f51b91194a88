import type { DependentView } from '../changes/dependent-views.js';
import { kindOf } from '../changes/kinds/registry.js';
import type { PlanFacts } from '../changes/model.js';
import { readDependentViews } from './view-rewrite.js';
import type { Client } from '../db/client.js';
import type { TableFacts } from '../db/catalog.js';
import { readColumnObjects, type ColumnObjects } from '../db/column-objects.js';
import { display, type QualifiedName } from '../db/ident.js';
import type { Plan } from './types.js';

/** What `checkDependents` found: problems, and facts for the plan. */
export interface DependentsCheck {
  readonly problems: readonly { readonly path: string; readonly message: string }[];
  /** The views found, and what the kind learned (see `ChangeKindModule.learn`). */
  readonly facts: Partial<PlanFacts> & { readonly views?: readonly DependentView[] };
}

/**
 * Look at what depends on the columns a plan replaces. Views and
 * materialized views reading the columns are recorded (see view-rewrite);
 * every kind refuses what it cannot carry (rules, policies, triggers naming
 * the column, statistics objects, exclusion constraints, the primary key),
 * since contract's DROP COLUMN would fail on them or silently take them
 * along, and only a kind that carries (rename) takes a foreign key pointing
 * at the column. Then the kind learns what it alone needs (a rename what it
 * carries, a retype whether the type changes in place). Runs inside a
 * transaction the caller rolls back.
 */
export async function checkDependents(client: Client, plan: Plan, table: QualifiedName, facts: TableFacts, newType: string): Promise<DependentsCheck> {
  const change = plan.change;
  const kind = kindOf(change);
  const outline = kind.outline(change);
  const problems: { path: string; message: string }[] = [];
  const objects = new Map<string, ColumnObjects>();
  for (const column of outline.reads) {
    // Definitions are read rewritten onto the new name, for a kind that carries them there.
    const found = await readColumnObjects(client, table, column, kind.carries ? outline.adds[0]!.name : column);
    objects.set(column, found);
    for (const u of found.unsupported)
      problems.push({
        path: change.kind,
        message: `column "${column}" is used by ${u}${u.includes('; ') ? '' : '; drop it first and create it again after contract'}`,
      });
    if (!kind.carries) {
      for (const fk of found.constraints.filter((c) => c.kind === 'foreign-key' && c.direction === 'to')) {
        problems.push({
          path: change.kind,
          message: `column "${column}" is referenced by foreign key ${fk.name} on ${display(fk.table)}; only rename carries foreign keys to a column`,
        });
      }
    }
  }
  const viewOids = [...new Set([...objects.values()].flatMap((o) => o.views ?? []))];
  const dependentViews = viewOids.length ? await readDependentViews(client, viewOids) : { views: [], problems: [] };
  problems.push(...dependentViews.problems.map((message) => ({ path: change.kind, message })));
  const views = dependentViews.views.length ? { views: dependentViews.views } : {};
  if (problems.length || !kind.learn) return { problems, facts: views };
  const learned = await kind.learn(change, { client, table, tableFacts: facts, objects, views: dependentViews.views, newType });
  return { problems: [...problems, ...learned.problems], facts: { ...views, ...learned.facts } };
}
