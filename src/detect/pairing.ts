import { shown, type AddedColumn, type FileState, type Finding } from './context.js';
import type { ColumnFacts } from './schema.js';

/**
 * What each column dropped from an existing table was, judged once the whole
 * file is read (a foreign key on the added column comes in a later
 * statement, as Prisma writes it):
 *
 * - re-added under the same name: a type change (Prisma's way), never a
 *   rename to itself; a `retype` plan when the type differs;
 * - beside an added column whose type, nullability and foreign key target
 *   all agree with its own: a rename, with the `rename` plan;
 * - beside added columns that do not agree: a drop, and the finding says why
 *   it is not a rename; no plan, since the intent is not known;
 * - beside an added column while its own definition is not in the files
 *   read: maybe a rename, no plan, and the finding says what could not be
 *   checked;
 * - alone: a drop, with the `drop` plan.
 */
export function pairDrops(state: FileState, file: string): Finding[] {
  const taken = new Set<AddedColumn>();
  const out: Finding[] = [];
  for (const drop of state.dropped) {
    const finding = (rule: Finding['rule'], why: string, fix: string, change?: Finding['change']): Finding => ({
      file,
      line: drop.line,
      rule,
      table: shown(drop.table),
      why,
      fix,
      change,
    });
    const lost = `every value of "${drop.column}" is lost, and the code running during the deploy, which still uses "${drop.column}", fails from the moment this commits`;
    const adds = state.added.filter((a) => a.key === drop.key && !taken.has(a));
    const same = adds.find((a) => a.column === drop.column);
    if (same) {
      taken.add(same);
      const changed = same.type && drop.facts?.type !== same.type;
      out.push(
        finding(
          'drop-add-retype',
          `DROP COLUMN ${drop.column} then ADD COLUMN ${drop.column}${same.type ? ` ${same.type}` : ''}: a type change written as a drop, so ${lost}`,
          changed
            ? `retype it with pgshift instead: the values are converted, both types are served during the deploy`
            : 'keep the column: dropping and re-adding it with the same definition only empties it',
          changed ? { kind: 'retype', table: drop.table, column: drop.column, to: same.type!, using: undefined } : undefined,
        ),
      );
      continue;
    }
    const others = adds.filter((a) => !state.dropped.some((d) => d.key === a.key && d.column === a.column));
    if (others.length === 0) {
      out.push(
        finding(
          'drop-column',
          `DROP COLUMN ${drop.column}: ${lost}`,
          'drop it with pgshift: new code stops naming it at switch-read, the column goes at contract once old code is gone',
          { kind: 'drop', table: drop.table, column: drop.column },
        ),
      );
      continue;
    }
    if (!drop.facts) {
      out.push(
        finding(
          'drop-add-rename',
          `DROP COLUMN ${drop.column} beside ADD COLUMN ${others.map((a) => a.column).join(', ')}: if one of them is "${drop.column}" renamed, ${lost}`,
          `the files read do not define "${drop.column}", so whether its type, nullability and references match cannot be checked and no plan is written; if it is a rename, write a pgshift rename plan (migrate plan new rename ${shown(drop.table)}.${drop.column} <new name>)`,
        ),
      );
      continue;
    }
    const reasons = others.map((a) => ({ add: a, differs: differences(drop.facts!, state.schema.column(a.key, a.column)) }));
    const match = reasons.find((r) => r.differs.length === 0);
    if (match) {
      taken.add(match.add);
      out.push(
        finding(
          'drop-add-rename',
          `DROP COLUMN ${drop.column} then ADD COLUMN ${match.add.column} of the same type, nullability and references: if this is a rename, ${lost}`,
          `if "${match.add.column}" is "${drop.column}" renamed, rename it with pgshift instead (data kept, both names work during the deploy)`,
          { kind: 'rename', table: drop.table, column: drop.column, to: match.add.column },
        ),
      );
      continue;
    }
    out.push(
      finding(
        'drop-column',
        `DROP COLUMN ${drop.column}: ${lost}. Not a rename: ${reasons.map((r) => `"${r.add.column}" differs in ${r.differs.join(' and ')}`).join('; ')}`,
        'if it is a drop, drop it with pgshift (migrate plan new drop); if it is a rename with another change, make the change and the rename as separate pgshift plans',
      ),
    );
  }
  return out;
}

/** What differs between a dropped column and an added one: type, nullability, foreign key target. */
function differences(old: ColumnFacts, added: ColumnFacts | undefined): string[] {
  if (!added) return ['definition (not known)'];
  const out: string[] = [];
  if (!old.type || old.type !== added.type) out.push(`type (${old.type ?? 'unknown'} → ${added.type ?? 'unknown'})`);
  if (old.notNull !== added.notNull) out.push(`nullability (${old.notNull ? 'NOT NULL' : 'nullable'} → ${added.notNull ? 'NOT NULL' : 'nullable'})`);
  if (old.references !== added.references) out.push(`references (${old.references ?? 'none'} → ${added.references ?? 'none'})`);
  return out;
}
