import { literal, qualified, type QualifiedName } from '../db/ident.js';
import type { Client } from '../db/client.js';
import type { ColumnChange, PlanFacts } from '../changes/model.js';
import { syncTriggers, type ObjectNames } from '../changes/sql-objects.js';

/**
 * How the backfill's batches skip the plan's sync trigger, when they may.
 *
 * A batch sets the new side from the old itself, and the sync trigger, told
 * so by `pgshift.backfill`, does nothing for its rows; but without a WHEN
 * clause (which would cost every application write its preparation,
 * docs/trigger.md) each row still enters the plpgsql function only to be
 * told to skip, a large part of a row's cost on a CPU-bound server. With
 * `session_replication_role = replica`, set for the batch's transaction
 * only, PostgreSQL fires no trigger that is enabled the ordinary way (`O`),
 * the sync trigger among them, and the batch pays nothing for it. The
 * application's sessions keep `origin`, so their writes are synced as before.
 *
 * The setting also skips every other ordinary trigger and rule, and fires
 * triggers enabled `REPLICA`. So each batch sets it only when the table (the
 * batch's leaf partition) has none whose skipping would change anything:
 * no trigger other than this plan's sync triggers enabled `O` or `R` (a
 * trigger enabled `ALWAYS` fires either way, a disabled one never), except
 * PostgreSQL's own constraint triggers (foreign keys, deferrable unique
 * keys) whose columns the batch does not write: those check or act only
 * when their key changes, which a batch's UPDATE, writing only the new
 * columns, never does; and no UPDATE rule enabled `O` or `R`. Otherwise the
 * batch runs as before, through the trigger. Only a superuser, or (PostgreSQL
 * 15+) a role granted `SET ON PARAMETER session_replication_role`, may set
 * it; any other runner keeps the trigger path.
 */
export interface TriggerBypass {
  /** The statements a batch sends after its settings and before its UPDATE of `table`. */
  readonly statements: (table: QualifiedName) => string[];
}

/** May this session set `session_replication_role`? A superuser, or on PostgreSQL 15+ a role granted SET on it. */
export async function maySetReplicationRole(client: Client): Promise<boolean> {
  const { rows } = await client.query<{ su: boolean; v: number }>(
    `SELECT pg_catalog.current_setting('is_superuser') = 'on' AS su, pg_catalog.current_setting('server_version_num')::int AS v`,
  );
  const { su, v } = rows[0]!;
  if (su) return true;
  if (v < 150000) return false;
  const granted = await client.query<{ ok: boolean }>(`SELECT pg_catalog.has_parameter_privilege('session_replication_role', 'SET') AS ok`);
  return granted.rows[0]!.ok;
}

/**
 * SQL true when `table` has a trigger or rule that `session_replication_role
 * = replica` would skip or newly fire and that matters to a batch writing
 * `change`'s new columns (see {@link TriggerBypass}).
 */
export function bypassUnsafeSql(table: QualifiedName, change: ColumnChange, names: ObjectNames, facts: PlanFacts): string {
  // Every comparison is between operands of one pg_catalog type (oid, not oid and regclass or an integer literal), so
  // pg_catalog's own operator is an exact match that no look-alike in a schema on the search_path can beat.
  const rel = `${literal(qualified(table))}::pg_catalog.regclass::pg_catalog.oid`;
  const ours = syncTriggers(names, facts)
    .map((t) => `pg_catalog.to_regprocedure(${literal(`${t.fn}()`)})`)
    .join(', ');
  const written = change.new.map((c) => literal(c.name)).join(', ');
  return `(EXISTS (SELECT FROM pg_catalog.pg_trigger t
     WHERE t.tgrelid = ${rel} AND t.tgenabled IN ('O', 'R')
       AND NOT COALESCE(t.tgfoid = ANY (ARRAY[${ours}]::pg_catalog.oid[]), false)
       AND NOT (t.tgisinternal AND t.tgconstraint <> 0::pg_catalog.oid AND NOT EXISTS (
         SELECT FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_attribute a ON a.attrelid = t.tgrelid
          WHERE c.oid = t.tgconstraint AND a.attname = ANY (ARRAY[${written}]::pg_catalog.name[])
            AND ((c.conrelid = t.tgrelid AND a.attnum = ANY (c.conkey)) OR (c.confrelid = t.tgrelid AND a.attnum = ANY (c.confkey))))))
   OR EXISTS (SELECT FROM pg_catalog.pg_rewrite r WHERE r.ev_class = ${rel} AND r.ev_type = '2' AND r.ev_enabled IN ('O', 'R')))`;
}

/** Why the batches on `table` go through the trigger (null: they may bypass it), for the start of the walk's log. */
export async function bypassRefusal(client: Client, table: QualifiedName, change: ColumnChange, names: ObjectNames, facts: PlanFacts): Promise<string | null> {
  if (!(await maySetReplicationRole(client))) return 'the runner may not set session_replication_role';
  const { rows } = await client.query<{ unsafe: boolean }>(`SELECT ${bypassUnsafeSql(table, change, names, facts)} AS unsafe`);
  return rows[0]!.unsafe ? 'the table has triggers or rules that session_replication_role = replica would skip' : null;
}

/**
 * The bypass for a runner that may set the parameter. Each batch decides
 * again, in its own transaction, after taking the lock its UPDATE takes
 * anyway: ROW EXCLUSIVE, which blocks only SHARE and stronger (CREATE
 * TRIGGER, ALTER TABLE … ENABLE/DISABLE TRIGGER, ADD FOREIGN KEY, CREATE
 * RULE, CREATE INDEX without CONCURRENTLY), never the application's reads
 * and writes, held to the batch's commit as the UPDATE would hold it. So no
 * trigger or rule can appear between the check and the UPDATE, and one
 * created between two batches is seen by the next.
 */
export function triggerBypass(change: ColumnChange, names: ObjectNames, facts: PlanFacts): TriggerBypass {
  return {
    statements: (table) => [
      `LOCK TABLE ${qualified(table)} IN ROW EXCLUSIVE MODE`,
      `SELECT pg_catalog.set_config('session_replication_role', CASE WHEN ${bypassUnsafeSql(table, change, names, facts)} THEN 'origin' ELSE 'replica' END, true)`,
    ],
  };
}
