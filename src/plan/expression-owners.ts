import { inSavepoint, singleStatement, type Client } from '../db/client.js';
import { ident } from '../db/ident.js';

/** An object a plan expression binds whose owner pgshift does not trust to run code as the runner. */
export interface UntrustedObject {
  /** `function public.split_part(character varying, text, integer)`, `operator public.=(…)`, `type app.t`. */
  readonly object: string;
  readonly owner: string;
}

const PROBE = 'pg_temp.pgshift_owner_probe';

/**
 * The functions, operators (and the functions behind them) and types an
 * expression binds under the session's search_path, whose owner is neither
 * a superuser nor a member of the runner (`pg_has_role(owner, current_user,
 * 'USAGE')`). pgshift runs the plan's expressions as the runner (backfill,
 * verify, lint's sample), so code owned by anyone else would run with the
 * runner's rights: a role that may create a better-matching
 * `public.split_part(varchar, …)` would become whoever runs pgshift (issue
 * 19). An owner who is the runner, a member of it, or a superuser gains
 * nothing by it.
 *
 * The expression becomes the body of a temporary SQL-standard function
 * (`RETURN …`, PostgreSQL 14+), which PostgreSQL analyses at CREATE and
 * records in pg_depend every object the body (and the signature) binds,
 * except its own pinned built-ins: exactly the objects not in pg_catalog.
 * Nothing is run. In a savepoint rolled back afterwards, so nothing stays;
 * an expression that does not compile gives nothing here (the compile check
 * reports it).
 */
export async function untrustedObjects(
  client: Client,
  params: readonly { name: string; type: string }[],
  returns: string,
  sql: string,
): Promise<UntrustedObject[]> {
  const signature = params.map((p) => p.type).join(', ');
  let created = false;
  return inSavepoint(
    client,
    async () => {
      await client.query(
        singleStatement(
          `CREATE FUNCTION ${PROBE}(${params.map((p) => `${ident(p.name)} ${p.type}`).join(', ')}) RETURNS ${returns} LANGUAGE sql RETURN (${sql})::${returns}`,
        ),
      );
      created = true;
      // Names are built from the catalog's columns, not regprocedure's text, which depends on the search_path.
      const { rows } = await client.query<UntrustedObject>(
        `WITH refs AS (
           SELECT d.refclassid, d.refobjid FROM pg_catalog.pg_depend d
            WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = $1::pg_catalog.regprocedure::pg_catalog.oid
         ), operators AS (
           SELECT o.* FROM refs JOIN pg_catalog.pg_operator o ON refs.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND o.oid = refs.refobjid
         ), functions AS (
           SELECT refs.refobjid AS oid, NULL::pg_catalog.text AS via FROM refs WHERE refs.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
           UNION ALL
           SELECT f, pg_catalog.concat(' (of operator ', n.nspname, '.', o.oprname, ')') FROM operators o
             JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace,
             LATERAL pg_catalog.unnest(ARRAY[o.oprcode, o.oprrest, o.oprjoin]::pg_catalog.oid[]) AS f WHERE f <> 0::pg_catalog.oid
         ), objects AS (
           SELECT pg_catalog.concat('function ', n.nspname, '.', p.proname, '(', pg_catalog.pg_get_function_identity_arguments(p.oid), ')', f.via) AS object,
                  p.proowner AS owner
             FROM functions f JOIN pg_catalog.pg_proc p ON p.oid = f.oid JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
           UNION ALL
           SELECT pg_catalog.concat('operator ', n.nspname, '.', o.oprname, '(', pg_catalog.format_type(o.oprleft, NULL), ', ', pg_catalog.format_type(o.oprright, NULL), ')'),
                  o.oprowner
             FROM operators o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
           UNION ALL
           SELECT pg_catalog.concat('type ', n.nspname, '.', t.typname), t.typowner
             FROM refs JOIN pg_catalog.pg_type t ON refs.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND t.oid = refs.refobjid
             JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
         )
         SELECT DISTINCT o.object, r.rolname AS owner FROM objects o JOIN pg_catalog.pg_roles r ON r.oid = o.owner
          WHERE NOT r.rolsuper AND NOT pg_catalog.pg_has_role(o.owner, CURRENT_USER, 'USAGE')
          ORDER BY 1`,
        [`${PROBE}(${signature})`],
      );
      return rows;
    },
    { undo: true },
  ).catch((error: unknown) => {
    // Only an expression that does not compile is left to the compile check; a failed look-up must not pass as trusted.
    if (created) throw error;
    return [];
  });
}

/** The refusal of one untrusted object, naming it, its owner and what to do. */
export function untrustedMessage(u: UntrustedObject): string {
  return (
    `binds ${u.object}, owned by role "${u.owner}", which is neither a superuser nor a member of the role running pgshift: ` +
    `pgshift would run it with its own rights. Schema-qualify the name you mean (pg_catalog.… for a built-in), ` +
    `or have a trusted role own the object`
  );
}
