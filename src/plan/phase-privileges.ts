import { kindOf, outlineOf } from '../changes/kinds/registry.js';
import { resolveTable } from '../db/catalog.js';
import type { Client } from '../db/client.js';
import { display, ident, objectName, qualified, type QualifiedName } from '../db/ident.js';
import type { PlanProblem } from '../errors.js';
import { PHASES, type Phase } from '../phases/phases.js';
import { privilegeProblems, statePrivileges, tableSchemaPrivilege, whoAmI, type MissingPrivilege } from './privileges.js';
import type { Plan } from './types.js';

/** Phases that create or replace functions in the state schema (the trigger function and the expression functions). */
const FUNCTION_PHASES: readonly Phase[] = ['dual-write', 'switch-read', 'stop-write'];

/**
 * What running `phases` of `plan` needs on its table and around it:
 * ownership of the table in every phase (ALTER TABLE, CREATE TRIGGER,
 * CREATE INDEX, ADD CONSTRAINT, DROP COLUMN and ANALYZE are the owner's);
 * CREATE on the state schema in the phases that (re)create functions, and
 * ownership of the plan's functions that already exist; USAGE on
 * plpgsql for the trigger function; for a rename, REFERENCES on the tables
 * its foreign keys point to, ownership of the tables whose foreign keys point
 * at the column, and of the sequences the column owns. Membership in an
 * owning role counts as ownership (as PostgreSQL's own check does).
 */
export async function phasePrivileges(
  client: Client,
  plan: Plan,
  table: QualifiedName,
  stateSchema: string,
  phases: readonly Phase[],
): Promise<MissingPrivilege[]> {
  if (!phases.length) return [];
  const { role } = await whoAmI(client);
  const r = ident(role);
  const t = qualified(table);
  const missing: MissingPrivilege[] = [];
  const list = (ps: readonly Phase[]): string => ps.join(', ');
  const ownership = (kind: 'table' | 'sequence' | 'function', object: string, owner: string, why: string): MissingPrivilege => ({
    privilege: 'ownership',
    object: `${kind} ${object} (owned by ${ident(owner)})`,
    why,
    fix: `GRANT ${ident(owner)} TO ${r} (membership in the owning role is enough), or ALTER ${kind.toUpperCase()} ${object} OWNER TO ${r}`,
  });

  const owner = await client.query<{ owns: boolean; owner: string }>(
    `SELECT pg_has_role(c.relowner, 'USAGE') AS owns, c.relowner::regrole::text AS owner FROM pg_class c WHERE c.oid = $1::regclass`,
    [t],
  );
  if (owner.rows[0] && !owner.rows[0].owns) {
    missing.push(
      ownership(
        'table',
        t,
        unquoteRole(owner.rows[0].owner),
        `to change it (ALTER TABLE, CREATE TRIGGER, CREATE INDEX CONCURRENTLY, ADD CONSTRAINT, DROP COLUMN) in ${list(phases)}`,
      ),
    );
  }

  // ALTER TABLE recurses to partitions and inheritance children and checks ownership of each.
  const children = await client.query<{ schema: string; name: string; owner: string }>(
    `WITH RECURSIVE tree(oid) AS (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass
                                  UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
     SELECT ${NAME_OF('c.oid')}, c.relowner::regrole::text AS owner FROM tree JOIN pg_class c ON c.oid = tree.oid
      WHERE NOT pg_has_role(c.relowner, 'USAGE') ORDER BY 1, 2`,
    [t],
  );
  for (const child of children.rows) {
    missing.push(
      ownership(
        'table',
        qualified(child),
        unquoteRole(child.owner),
        `because changes to ${display(table)} recurse to its partitions and child tables, in ${list(phases)}`,
      ),
    );
  }

  // CREATE INDEX (CONCURRENTLY too) checks CREATE on the table's schema, not only ownership: on PostgreSQL 15+
  // schema public grants PUBLIC no CREATE, so a table owner there may still be unable to index it.
  if (phases.includes('switch-read') && (await buildsIndexes(client, plan, t))) {
    const usable = await client.query<{ ok: boolean }>(`SELECT has_schema_privilege($1, 'CREATE') AS ok`, [table.schema]);
    if (!usable.rows[0]!.ok) {
      missing.push({
        privilege: 'CREATE',
        object: `schema ${ident(table.schema)}`,
        why: `to build indexes on ${display(table)} in switch-read (CREATE INDEX checks CREATE on the table's schema)`,
        fix: `GRANT CREATE ON SCHEMA ${ident(table.schema)} TO ${r}`,
      });
    }
  }

  const functionPhases = phases.filter((p) => FUNCTION_PHASES.includes(p));
  if (functionPhases.length) {
    const s = ident(stateSchema);
    const schema = await client.query<{ create: boolean | null }>(`SELECT has_schema_privilege(oid, 'CREATE') AS create FROM pg_namespace WHERE nspname = $1`, [
      stateSchema,
    ]);
    // A schema still to be made is checked by `statePrivileges` (CREATE on the database); its creator may create in it.
    if (schema.rows[0]?.create === false) {
      missing.push({
        privilege: 'CREATE',
        object: `schema ${s}`,
        why: `to create the trigger function and the expression functions in ${list(functionPhases)}`,
        fix: `GRANT CREATE ON SCHEMA ${s} TO ${r}`,
      });
    }
    if (phases.includes('dual-write')) {
      const lang = await client.query<{ ok: boolean }>(`SELECT has_language_privilege('plpgsql', 'USAGE') AS ok`);
      if (!lang.rows[0]!.ok)
        missing.push({
          privilege: 'USAGE',
          object: 'language plpgsql',
          why: 'to create the trigger function in dual-write',
          fix: `GRANT USAGE ON LANGUAGE plpgsql TO ${r}`,
        });
    }
  }

  // The plan's own functions, when an earlier phase (perhaps run by another role) made them: replaced and dropped later on.
  const outline = outlineOf(plan.change);
  const names = ['sync', 'sync_insert', ...outline.adds.map((_, i) => `fwd${i}`), ...outline.reads.map((_, i) => `rev${i}`)].map((n) =>
    objectName(plan.name, n),
  );
  const later = phases.filter((p) => p !== 'expand' && p !== 'backfill');
  if (later.length) {
    const fns = await client.query<{ fn: string; owner: string }>(
      `SELECT p.oid::regprocedure::text AS fn, p.proowner::regrole::text AS owner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = $1 AND p.proname = ANY ($2::text[]) AND NOT pg_has_role(p.proowner, 'USAGE') ORDER BY 1`,
      [stateSchema, names],
    );
    for (const f of fns.rows) missing.push(ownership('function', f.fn, unquoteRole(f.owner), `to replace or drop it in ${list(later)}`));
  }

  // What a kind that carries (rename) moves to the new column: the foreign keys at both ends.
  if (kindOf(plan.change).carries) missing.push(...(await renamePrivileges(client, outline.reads[0]!, t, phases, ownership, r)));
  return missing;
}

/** Does switch-read build an index: a new column declared `unique`, or a rename carrying the column's indexes? */
async function buildsIndexes(client: Client, plan: Plan, t: string): Promise<boolean> {
  const kind = kindOf(plan.change);
  if (kind.uniques(plan.change).length) return true;
  if (!kind.carries) return false;
  const { rows } = await client.query<{ ok: boolean }>(
    // A key column is in indkey (an index backing a constraint depends on the constraint, not the column); one used in
    // an expression or predicate only, through pg_depend.
    `SELECT EXISTS (SELECT 1 FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attname = $2
                     WHERE x.indrelid = $1::regclass
                       AND (a.attnum = ANY (x.indkey)
                            OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = x.indexrelid
                                          AND d.refclassid = 'pg_class'::regclass AND d.refobjid = x.indrelid AND d.refobjsubid = a.attnum))) AS ok`,
    [t, kind.outline(plan.change).reads[0]],
  );
  return rows[0]!.ok;
}

/** A rename carries foreign keys both ways and moves owned sequences: see `phasePrivileges`. */
async function renamePrivileges(
  client: Client,
  column: string,
  t: string,
  phases: readonly Phase[],
  ownership: (kind: 'table' | 'sequence', object: string, owner: string, why: string) => MissingPrivilege,
  r: string,
): Promise<MissingPrivilege[]> {
  const missing: MissingPrivilege[] = [];
  if (phases.includes('switch-read')) {
    // ADD FOREIGN KEY needs REFERENCES on the referenced columns (or the table).
    const refs = await client.query<{ schema: string; name: string; cols: string[] }>(
      `SELECT ${NAME_OF('c.confrelid')}, array_agg(DISTINCT a.attname::text ORDER BY a.attname::text) AS cols
         FROM pg_constraint c
         JOIN pg_attribute own ON own.attrelid = c.conrelid AND own.attnum = ANY (c.conkey) AND own.attname = $2
         CROSS JOIN LATERAL unnest(c.confkey) AS k(attnum)
         JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
        WHERE c.contype = 'f' AND c.conrelid = $1::regclass AND NOT has_column_privilege(c.confrelid, k.attnum, 'REFERENCES')
        GROUP BY c.confrelid, 1, 2`,
      [t, column],
    );
    for (const ref of refs.rows) {
      missing.push({
        privilege: 'REFERENCES',
        object: `table ${qualified(ref)}`,
        why: `to copy the foreign key of "${column}" onto the new column in switch-read`,
        fix: `GRANT REFERENCES (${ref.cols.map(ident).join(', ')}) ON ${qualified(ref)} TO ${r}`,
      });
    }
  }
  const fkPhases = phases.filter((p) => p === 'switch-read' || p === 'contract');
  if (fkPhases.length) {
    const referencing = await client.query<{ schema: string; name: string; owner: string }>(
      `SELECT DISTINCT ${NAME_OF('c.conrelid')}, r.relowner::regrole::text AS owner
         FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
         JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = ANY (c.confkey) AND a.attname = $2
        WHERE c.contype = 'f' AND c.confrelid = $1::regclass AND c.conrelid <> c.confrelid AND NOT pg_has_role(r.relowner, 'USAGE')`,
      [t, column],
    );
    for (const ref of referencing.rows) {
      missing.push(
        ownership('table', qualified(ref), unquoteRole(ref.owner), `to copy, then drop and rename, its foreign key to "${column}" in ${fkPhases.join(', ')}`),
      );
    }
  }
  if (phases.includes('contract')) {
    const seqs = await client.query<{ schema: string; name: string; owner: string }>(
      `SELECT ${NAME_OF('s.oid')}, s.relowner::regrole::text AS owner FROM pg_depend d
         JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid AND a.attname = $2
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass
          AND d.deptype = 'a' AND NOT pg_has_role(s.relowner, 'USAGE')`,
      [t, column],
    );
    for (const s of seqs.rows)
      missing.push(ownership('sequence', qualified(s), unquoteRole(s.owner), `to move it to the new column (ALTER SEQUENCE … OWNED BY) in contract`));
  }
  return missing;
}

/** Select-list items `schema`, `name` of the relation with oid `oid` (an SQL expression), for `qualified`. */
const NAME_OF = (oid: string): string =>
  `(SELECT n.nspname::text FROM pg_class x JOIN pg_namespace n ON n.oid = x.relnamespace WHERE x.oid = ${oid}) AS schema,
   (SELECT x.relname::text FROM pg_class x WHERE x.oid = ${oid}) AS name`;

/** `regrole` text is quoted when needed; the helpers quote again. */
function unquoteRole(text: string): string {
  return text.startsWith('"') ? text.slice(1, -1).replaceAll('""', '"') : text;
}

/**
 * Check what `phases` of a plan need before running them (in-flight plans:
 * the phases still to run, or to roll back), resolving the table from the
 * recorded facts. Throws nothing; returns the problems to report.
 */
export async function runPrivilegeProblems(
  client: Client,
  plan: Plan,
  table: QualifiedName,
  stateSchema: string,
  phases: readonly Phase[],
): Promise<PlanProblem[]> {
  const { rows } = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [qualified(table)]);
  if (!rows[0]!.ok) return [];
  return privilegeProblems(client, plan, await phasePrivileges(client, plan, table, stateSchema, phases));
}

/**
 * Before the state is read: what reading and writing it needs (see
 * `statePrivileges`). When something is missing, what the table needs for
 * the whole plan is added, so one run names every grant at once; empty when
 * the state is within reach.
 */
export async function stateAccessProblems(client: Client, plan: Plan, stateSchema: string): Promise<PlanProblem[]> {
  const missing = await statePrivileges(client, stateSchema);
  if (!missing.length) return [];
  const schemaUsage = await tableSchemaPrivilege(client, plan.table.schema);
  missing.push(...schemaUsage);
  const table = schemaUsage.length ? null : await resolveTable(client, plan.table);
  if (table) missing.push(...(await phasePrivileges(client, plan, table, stateSchema, PHASES)));
  return privilegeProblems(client, plan, missing);
}
