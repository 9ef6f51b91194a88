import type pg from 'pg';

/** The releases a team ships across one plan: old code, code that reads by flag and writes new, new-only code. */
export type Version = 'v1' | 'v2' | 'v3';

/** Which columns of the plan a release writes. */
export type Side = 'old' | 'new';

/** Column values one write sets, by column name (the plan's columns plus untouched ones such as email). */
export type Row = Readonly<Record<string, string | null>>;

/** Anything the app can query through: a client of the app's own. */
export type Db = Pick<pg.ClientBase, 'query'>;

/**
 * One release of the users app. Every write sets the whole side it knows, so
 * what a row must hold afterwards follows from the last write alone.
 */
export interface UsersApp {
  readonly version: Version;
  readonly writes: Side;
  /** Fresh values for a write; `n` makes them unique across the run. */
  values(n: number): Row;
  /** Insert a user; the new id. */
  insert(db: Db, row: Row): Promise<string>;
  /** Update a user by id; false when no row has that id. */
  update(db: Db, id: string, row: Row): Promise<boolean>;
  /** The user's name as this release shows it; null when the row is missing or the name is empty. */
  read(db: Db, id: string): Promise<string | null>;
  /** A page of users after `afterId`: how many rows, and how many lack a name. */
  list(db: Db, afterId: string, limit: number): Promise<{ rows: number; unnamed: number }>;
}

/** The releases of the app for one plan. Each call makes a fresh instance (its own flag cache). */
export interface AppFamily {
  /** The plan these releases go with (its file is `plans/<plan>.yaml`). */
  readonly plan: string;
  readonly versions: Readonly<Record<Version, () => UsersApp>>;
}

/** The id returned by `INSERT … RETURNING id`. */
export function insertedId(result: pg.QueryResult<{ id: string }>): string {
  const id = result.rows[0]?.id;
  if (id === undefined) throw new Error('INSERT … RETURNING id returned no row');
  return String(id);
}

/** Count a page's rows and those whose shown name is missing. */
export function page(result: pg.QueryResult<{ name: string | null }>): { rows: number; unnamed: number } {
  return { rows: result.rows.length, unnamed: result.rows.filter((r) => !r.name).length };
}
