import { stringify } from 'yaml';
import { PLACEHOLDER } from '../plan/schema.js';
import { constrainPlanBody } from './constrain.js';
import { ident, type ColumnChangeSuggestion } from './context.js';
import { indexFields } from './index-plan.js';
import { renameTablePlan } from './rename-table.js';

/** A plan file `detect` proposes instead of an unsafe statement. */
export interface SuggestedPlan {
  readonly name: string;
  /** The file's text: the plan, with a comment saying where it came from. */
  readonly yaml: string;
}

/** A kebab-case plan name from its parts (the plan-name rule: lowercase letters, digits, single dashes). */
export function planName(...parts: readonly string[]): string {
  return (
    parts
      .join('-')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60)
      .replace(/-+$/, '') || 'plan'
  );
}

/** How a plan names a table: `schema.table`, quoting a part that holds a dot. */
function tableText(t: { schema: string | undefined; name: string }): string {
  const part = (p: string): string => (p.includes('.') ? `"${p}"` : p);
  return t.schema ? `${part(t.schema)}.${part(t.name)}` : part(t.name);
}

/**
 * The plan that makes `change` the zero-downtime way. What pgshift cannot
 * know from the SQL alone (a retype's way back to the old type) is left as a
 * marked placeholder, which `lint` refuses until a person writes it.
 */
export function suggestPlan(change: ColumnChangeSuggestion, source: string): SuggestedPlan {
  if (change.kind === 'rename-table') {
    const name = planName(change.kind, change.table.name, change.to);
    return { name, yaml: renameTablePlan(change, name, tableText(change.table), source) };
  }
  const name = planName(change.kind, change.table.name, change.kind === 'index' ? change.name : change.column);
  const table = tableText(change.table);
  const body =
    change.kind === 'index'
      ? { plan: name, table, index: indexFields(change) }
      : change.kind === 'rename'
        ? { plan: name, table, rename: { column: change.column, to: change.to } }
        : change.kind === 'drop'
          ? { plan: name, table, drop: { column: change.column } }
          : change.kind === 'constrain'
            ? { plan: name, table, ...constrainPlanBody(change) }
            : change.kind === 'add'
              ? { plan: name, table, add: addBody(change) }
              : {
                  plan: name,
                  table,
                  retype: {
                    column: change.column,
                    to: change.to,
                    as: `${change.column}_new`,
                    using: change.using ?? `${ident(change.column)}::${change.to}`,
                    reverse: `${PLACEHOLDER} the old value from ${change.column} (e.g. ${ident(change.column)}::<old type>)`,
                  },
                };
  return { name, yaml: `# Written by \`migrate plan detect\` for ${source}.\n${stringify(body)}` };
}

/** An `add` plan's part: the value the statement gave, or a placeholder for the value of every existing row and old code's inserts. */
function addBody(change: Extract<ColumnChangeSuggestion, { kind: 'add' }>): Record<string, unknown> {
  return {
    column: change.column,
    type: change.type,
    ...(change.notNull ? { not_null: true } : {}),
    value: change.value ?? `${PLACEHOLDER} the value every existing row and old code's inserts get (an expression over the row)`,
    ...(change.keepDefault && change.value ? { default: change.value } : {}),
  };
}
