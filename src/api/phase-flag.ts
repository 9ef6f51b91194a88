import type pg from 'pg';
import { ident } from '../db/ident.js';
import { DEFAULT_STATE_SCHEMA } from '../defaults.js';
import { phaseIndex, type Phase } from '../phases/phases.js';

/** Anything that can run a query: a `pg` Client, Pool or PoolClient. */
export type Queryable = Pick<pg.Client, 'query'> | Pick<pg.Pool, 'query'>;

/**
 * The last phase pgshift applied for a plan (null when none, or when the
 * state schema does not exist yet). Applications call it to switch reads.
 */
export async function currentPhase(db: Queryable, plan: string, stateSchema = DEFAULT_STATE_SCHEMA): Promise<Phase | null> {
  const { rows } = await db.query<{ phase: Phase | null }>(
    `SELECT CASE WHEN to_regprocedure($1) IS NULL THEN NULL ELSE ${ident(stateSchema)}.phase($2) END AS phase`,
    [`${ident(stateSchema)}.phase(text)`, plan],
  );
  return rows[0]?.phase ?? null;
}

/** True once `switch-read` is applied: reads may come from the new columns. */
export async function readsSwitched(db: Queryable, plan: string, stateSchema = DEFAULT_STATE_SCHEMA): Promise<boolean> {
  return phaseIndex(await currentPhase(db, plan, stateSchema)) >= phaseIndex('switch-read');
}
