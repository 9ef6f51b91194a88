import { ident, literal, qualified } from '../../../db/ident.js';
import type { PlanFacts } from '../../model.js';
import { ddl, emptyProgram, type PhaseProgram } from '../../steps.js';
import { oldFacts } from '../kind.js';
import { canonicalType } from '../new-column.js';
import { retypedColumn, type RetypeSpec } from './spec.js';

/**
 * A retype PostgreSQL does in place (the probe at plan start found that
 * neither the table nor an index is rewritten, e.g. `varchar(50)` → `text`):
 * one `ALTER COLUMN … TYPE` in expand, under ACCESS EXCLUSIVE held only for
 * the catalog update, and nothing in the other phases. Old code keeps working
 * (its values fit the wider type), new code may use the new type from then on.
 * expand rolls back the same way when the way back is in place too;
 * otherwise (e.g. `text` → `varchar(50)`, which must check every row under
 * ACCESS EXCLUSIVE) the rollback is refused and says what to do instead.
 */
export function metadataOnlyRetypeProgram(change: RetypeSpec, facts: PlanFacts): PhaseProgram {
  const t = qualified(facts.table);
  const col = ident(change.column);
  const old = oldFacts(facts, change.column);
  const newType = canonicalType(facts, retypedColumn(change));
  const typeIs = (type: string): string =>
    `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(${literal(t)}) AND attname = ${literal(change.column)}
        AND NOT attisdropped AND format_type(atttypid, atttypmod) = ${literal(type)}) AS done`;
  const program = emptyProgram();
  program.expand = {
    apply: [
      ddl(
        `change ${change.column} from ${old.type} to ${newType} in place: metadata-only, PostgreSQL rewrites neither the table nor its indexes (the other phases have nothing to do)`,
        'ACCESS EXCLUSIVE',
        [`ALTER TABLE ${t} ALTER COLUMN ${col} TYPE ${newType} USING (${change.using})`],
        typeIs(newType),
      ),
    ],
    rollback: facts.retype?.reverseMetadataOnly
      ? [
          ddl(
            `change ${change.column} back to ${old.type} in place (metadata-only)`,
            'ACCESS EXCLUSIVE',
            [`ALTER TABLE ${t} ALTER COLUMN ${col} TYPE ${old.type} USING (${change.reverse})`],
            typeIs(old.type),
          ),
        ]
      : [
          {
            kind: 'refuse',
            description:
              `changing ${change.column} back from ${newType} to ${old.type} would check or rewrite every row under ACCESS EXCLUSIVE; ` +
              `write a retype plan the other way (with "as:"), which copies through a new column without long locks`,
          },
        ],
  };
  return program;
}
