import type { PlanFacts } from '../changes/model.js';
import { checkDependents } from './dependents.js';
import { kindOf, resolveChange } from '../changes/kinds/registry.js';
import { inlineExpressions } from '../changes/inline.js';
import { BODY_TAG } from '../changes/sql-objects.js';
import { inSavepoint, singleStatement, withRolledBackTransaction, type Client } from '../db/client.js';
import { column, isUniqueKey, readTableFacts, resolveTable, type ColumnFacts } from '../db/catalog.js';
import { display, ident } from '../db/ident.js';
import { readPartitioning } from '../db/partitions.js';
import { checkDeclaredUnique } from './partition-check.js';
import { PlanError, type PlanProblem } from '../errors.js';
import { PHASES } from '../phases/phases.js';
import { phasePrivileges } from './phase-privileges.js';
import { privilegeProblems, statePrivileges, tableSchemaPrivilege, tempPrivilege, type MissingPrivilege } from './privileges.js';
import type { Guards, Plan } from './types.js';
import { rewriteDependentViews } from './view-rewrite.js';
import { untrustedMessage, untrustedObjects } from './expression-owners.js';

/** How far the check may go. */
export interface CatalogCheckOptions {
  /**
   * Set when the plan is starting: dependent views' definitions over the new
   * columns are computed, which takes ACCESS EXCLUSIVE on the table for an
   * instant under these guards (see view-rewrite). Unset for lint and show.
   */
  readonly rewriteViewsUnder?: Guards | undefined;
  /** Check what the connected role needs for the whole plan first (default true; `show` skips it). */
  readonly privileges?: boolean | undefined;
}

/**
 * Check a plan that has not started against the live catalog, and capture the
 * facts its phases will compile from. Every problem is reported at once.
 * Runs in a transaction that is always rolled back: nothing is left behind.
 * With `privileges` (the default), what the connected role needs for the
 * whole plan is checked first (see privileges.ts): a plan does not start
 * when a later phase would stop on `permission denied`.
 */
export async function checkAgainstCatalog(client: Client, plan: Plan, stateSchema: string, options: CatalogCheckOptions = {}): Promise<PlanFacts> {
  const privileges = options.privileges ?? true;
  const problems: PlanProblem[] = [];
  const problem = (path: string, message: string): void => void problems.push({ file: plan.file, path, message });
  const tableText = plan.table.schema ? `${plan.table.schema}.${plan.table.name}` : plan.table.name;

  const missing: MissingPrivilege[] = [];
  if (privileges) {
    missing.push(...(await tempPrivilege(client)), ...(await statePrivileges(client, stateSchema)));
    const schemaUsage = await tableSchemaPrivilege(client, plan.table.schema);
    // Without USAGE on its schema the table cannot even be looked up.
    if (schemaUsage.length) throw new PlanError(await privilegeProblems(client, plan, [...missing, ...schemaUsage]));
  }
  const table = await resolveTable(client, plan.table);
  if (!table) {
    problem('table', `table "${tableText}" does not exist (or is not a table)`);
    throw new PlanError([...problems, ...(await privilegeProblems(client, plan, missing))]);
  }
  if (privileges) missing.push(...(await phasePrivileges(client, plan, table, stateSchema, PHASES)));
  const facts = await readTableFacts(client, table);
  const kind = kindOf(plan.change);
  const outline = kind.outline(plan.change);
  const kindField = plan.change.kind;

  for (const name of outline.reads) {
    const col = column(facts, name);
    if (!col) problem(kindField, `column "${name}" does not exist in ${display(table)}`);
    else if (col.identity || col.generated)
      problem(kindField, `column "${name}" is ${col.identity ? 'an identity' : 'a generated'} column; pgshift cannot keep it in sync`);
  }
  const added = new Set<string>();
  for (const add of outline.adds) {
    if (column(facts, add.name)) problem(add.field.replace(/\.type$/, '.name'), `column "${add.name}" already exists in ${display(table)}`);
    if (added.has(add.name) || outline.reads.includes(add.name)) problem(add.field.replace(/\.type$/, '.name'), `column "${add.name}" is named twice`);
    added.add(add.name);
  }
  for (const p of kind.check?.(plan.change) ?? []) problem(p.path, p.message);

  const keyNames = plan.key ?? facts.primaryKey;
  const key: { name: string; type: string }[] = [];
  if (!keyNames) problem('key', `${display(table)} has no primary key; set "key:" to columns that are unique and NOT NULL`);
  else {
    for (const name of keyNames) {
      const col = column(facts, name);
      if (!col) problem('key', `key column "${name}" does not exist in ${display(table)}`);
      else {
        if (outline.reads.includes(name)) problem('key', `key column "${name}" is changed by the plan; the key must stay put`);
        key.push({ name, type: col.type });
      }
    }
    if (key.length === keyNames.length) {
      const nullable = key.filter((k) => !column(facts, k.name)?.notNull);
      if (nullable.length) problem('key', `key column(s) ${nullable.map((k) => `"${k.name}"`).join(', ')} must be NOT NULL`);
      else if (!(await isUniqueKey(client, facts.oid, keyNames))) problem('key', `(${keyNames.join(', ')}) is not covered by a unique index`);
      else {
        const keyed = await keyTypes(client, facts.oid, keyNames);
        for (const k of key) k.type = keyed.get(k.name)?.type ?? k.type;
        for (const [name, k] of keyed)
          if (!k.comparable)
            problem(
              'key',
              `key column "${name}" is of type ${k.type}, whose ordering operators are not pg_catalog's; pgshift compares keys under ` +
                `search_path = pg_catalog, pg_temp, where they are not found (a different ordering could be picked); name a key of a built-in type in "key:"`,
            );
      }
    }
  }

  // The checks below try types and expressions on temporary tables: without the privileges their errors would mislead.
  if (missing.length) throw new PlanError([...problems, ...(await privilegeProblems(client, plan, missing))]);

  const searchPath = (await client.query<{ p: string }>(`SELECT pg_catalog.current_setting('search_path') AS p`)).rows[0]!.p;
  const version = Number((await client.query<{ v: string }>(`SELECT pg_catalog.current_setting('server_version_num') AS v`)).rows[0]!.v);
  const newTypes: Record<string, string> = {};
  await withRolledBackTransaction(client, async () => {
    for (const add of outline.adds) {
      if (add.type === null) continue;
      const canonical = await canonicalType(client, add.type);
      if (canonical === null) problem(add.field, `type "${add.type}" does not exist`);
      else newTypes[add.name] = canonical;
    }
    if (problems.length) return;
    const oldParams = outline.reads.map((n) => column(facts, n)!);
    const newParams = outline.adds.map((a) => ({ name: a.exprName ?? a.name, type: newTypes[a.name] ?? oldParams[0]!.type }));
    for (const expr of outline.expressions) {
      if (expr.sql.includes(BODY_TAG)) {
        problem(expr.field, `must not contain ${BODY_TAG}`);
        continue;
      }
      const params = expr.over === 'old' ? oldParams : newParams;
      const returns = expr.over === 'old' ? newTypes[expr.gives] : column(facts, expr.gives)?.type;
      // Before anything evaluates it (planning may fold constants): code the runner does not trust never runs as the runner.
      const untrusted = await untrustedObjects(client, params, returns ?? 'text', expr.sql);
      for (const u of untrusted) problem(expr.field, untrustedMessage(u));
      if (untrusted.length) continue;
      const error = await compiles(client, params, returns ?? 'text', expr.sql);
      if (error) problem(expr.field, `does not compile: ${error}`);
    }
  });
  const partitioning = await readPartitioning(client, table);
  for (const k of partitioning?.keyColumns.filter((k) => outline.reads.includes(k)) ?? [])
    problem(
      kindField,
      `column "${k}" is in the partition key of ${display(table)}, and PostgreSQL cannot drop a partition key column, so contract could not finish; ` +
        `keep the column, or move the rows to a table partitioned by other columns first`,
    );
  for (const p of checkDeclaredUnique(plan, table, facts, outline.reads, partitioning)) problem(p.path, p.message);
  if (problems.length) throw new PlanError(problems);
  const dependents = await withRolledBackTransaction(client, () => checkDependents(client, plan, table, facts, newTypes[outline.adds[0]?.name ?? ''] ?? ''));
  problems.push(...dependents.problems.map((p) => ({ file: plan.file, ...p })));
  if (problems.length) throw new PlanError(problems);
  const captured: PlanFacts = {
    table,
    columns: facts.columns,
    key,
    searchPath,
    newTypes,
    stateSchema,
    serverVersion: version,
    ...dependents.facts,
    ...(partitioning ? { partitioning } : {}),
  };
  // A kind with a program of its own (an in-place retype, a drop) has no trigger.
  const inline = kind.program?.(plan.change, captured, plan.name)
    ? undefined
    : await withRolledBackTransaction(client, () => inlineExpressions(client, resolveChange(plan.change, captured), searchPath, version));
  const planFacts = inline ? { ...captured, inline } : captured;
  if (!options.rewriteViewsUnder || !planFacts.views?.length) return planFacts;
  const views = await rewriteDependentViews(client, plan, planFacts, options.rewriteViewsUnder);
  if (views.problems.length) throw new PlanError(views.problems.map((message) => ({ file: plan.file, path: plan.change.kind, message })));
  return { ...planFacts, views: views.views };
}

/**
 * Each key column's type as printed with an empty search_path (qualified
 * unless in pg_catalog: the backfill, verify and the final check cast key
 * values to it under `search_path = pg_catalog, pg_temp`), and whether its
 * values compare with pg_catalog's operators there: a base type (through
 * domains) of pg_catalog, or an enum. Any other type's `<` would be looked
 * up in pg_catalog only and could bind another ordering than its index's.
 */
async function keyTypes(client: Client, table: number, names: readonly string[]): Promise<Map<string, { type: string; comparable: boolean }>> {
  return withRolledBackTransaction(client, async () => {
    await client.query(`SELECT pg_catalog.set_config('search_path', '', true)`);
    const { rows } = await client.query<{ name: string; type: string; comparable: boolean }>(
      `SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type,
              (WITH RECURSIVE base(oid, depth) AS (
                 SELECT a.atttypid, 0
                 UNION ALL SELECT t.typbasetype, b.depth + 1 FROM base b JOIN pg_type t ON t.oid = b.oid WHERE t.typtype = 'd'
               )
               SELECT t.typnamespace = 'pg_catalog'::regnamespace OR t.typtype = 'e'
                 FROM base b JOIN pg_type t ON t.oid = b.oid ORDER BY b.depth DESC LIMIT 1) AS comparable
         FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = ANY ($2::text[])`,
      [table, names],
    );
    return new Map(rows.map((r) => [r.name, { type: r.type, comparable: r.comparable }]));
  });
}

/**
 * The canonical `format_type` of a type as written, or null when it is not a
 * type. The text goes into a one-column temporary table definition sent as a
 * single extended-protocol statement, so text that is not exactly one type
 * fails instead of running.
 */
async function canonicalType(client: Client, type: string): Promise<string | null> {
  return inSavepoint(
    client,
    async () => {
      await client.query(singleStatement(`CREATE TEMP TABLE pgshift_type_check (x ${type}) ON COMMIT DROP`));
      const { rows } = await client.query<{ t: string; n: number }>(
        `SELECT max(format_type(atttypid, atttypmod)) AS t, count(*)::int AS n FROM pg_attribute
          WHERE attrelid = 'pg_temp.pgshift_type_check'::regclass AND attnum > 0`,
      );
      return rows[0]?.n === 1 ? rows[0].t : null;
    },
    { undo: true },
  ).catch(() => null);
}

/**
 * Null when `sql` type-checks as an expression over `params` giving
 * `returns`; else PostgreSQL's message. It is PREPAREd over a one-row
 * subquery whose columns are the parameters: the server parses and analyses
 * it without running it, and the extended protocol refuses a second
 * statement smuggled in after a `;`.
 */
async function compiles(client: Client, params: readonly Pick<ColumnFacts, 'name' | 'type'>[], returns: string, sql: string): Promise<string | null> {
  const columns = params.map((p) => `NULL::${p.type} AS ${ident(p.name)}`).join(', ');
  return inSavepoint(client, async () => {
    await client.query(singleStatement(`SELECT (${sql})::${returns} FROM (SELECT ${columns}) AS pgshift_row LIMIT 0`));
    return null;
  }).catch((error: unknown) => (error as Error).message);
}
