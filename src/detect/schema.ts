import { as, list, rangeVar, str, tableKey, typeText, type Node, type TableRef } from './ast.js';

/** What the migrations read so far say about one column. */
export interface ColumnFacts {
  /** Its type as `typeText` prints it (`varchar(100)`, `integer`), so two spellings of one type compare equal. */
  readonly type: string | undefined;
  readonly notNull: boolean;
  /** The table its foreign key points at (`schema.table`), if it has one. */
  readonly references: string | undefined;
}

/**
 * The columns of every table as the files read so far define them, carried
 * from one file to the next: a folder of migrations is read in order, so a
 * later file's `ALTER` is judged against the table an earlier file created.
 * Only what the statements say is known; a table created outside the files
 * read has no entry, and nothing is assumed about it.
 */
export class SchemaModel {
  private readonly tables = new Map<string, Map<string, ColumnFacts>>();

  column(table: string, column: string): ColumnFacts | undefined {
    return this.tables.get(table)?.get(column);
  }

  /** `CREATE TABLE`: its columns, with the NOT NULL, PRIMARY KEY and FOREIGN KEY constraints written inline or on the table. */
  createTable(key: string, elts: readonly unknown[]): void {
    const columns = new Map<string, ColumnFacts>();
    this.tables.set(key, columns);
    for (const elt of elts) {
      const def = as(elt, 'ColumnDef');
      const name = str(def?.colname);
      if (def && name) columns.set(name, columnFacts(def));
    }
    for (const elt of elts) {
      const c = as(elt, 'Constraint');
      if (c) this.constraint(key, c);
    }
  }

  /** `ADD COLUMN`. */
  addColumn(key: string, def: Node): void {
    const name = str(def.colname);
    if (name) this.table(key).set(name, columnFacts(def));
  }

  dropColumn(key: string, column: string): ColumnFacts | undefined {
    const facts = this.column(key, column);
    this.tables.get(key)?.delete(column);
    return facts;
  }

  renameColumn(key: string, column: string, to: string): void {
    const facts = this.dropColumn(key, column);
    if (facts) this.table(key).set(to, facts);
  }

  renameTable(key: string, to: string): void {
    const columns = this.tables.get(key);
    this.tables.delete(key);
    if (columns) this.tables.set(to, columns);
  }

  dropTable(key: string): void {
    this.tables.delete(key);
  }

  /** Change one fact of a known column (`SET NOT NULL`, `TYPE`); an unknown column stays unknown. */
  update(key: string, column: string, change: Partial<ColumnFacts>): void {
    const facts = this.column(key, column);
    if (facts) this.table(key).set(column, { ...facts, ...change });
  }

  /** A table constraint (`CREATE TABLE`'s or `ADD CONSTRAINT`'s): PRIMARY KEY makes its columns NOT NULL, FOREIGN KEY records its target. */
  constraint(key: string, c: Node): void {
    const names = (l: unknown): string[] => list(l).flatMap((n) => str(as(n, 'String')?.sval) ?? []);
    if (c.contype === 'CONSTR_PRIMARY') for (const col of names(c.keys)) this.update(key, col, { notNull: true });
    if (c.contype === 'CONSTR_FOREIGN') {
      const target = rangeVar(c.pktable);
      for (const col of names(c.fk_attrs)) if (target) this.update(key, col, { references: tableKey(target) });
    }
  }

  private table(key: string): Map<string, ColumnFacts> {
    let columns = this.tables.get(key);
    if (!columns) this.tables.set(key, (columns = new Map()));
    return columns;
  }
}

/** A column definition's facts, from its type and inline constraints. */
export function columnFacts(def: Node): ColumnFacts {
  const constraints = list(def.constraints).map((c) => as(c, 'Constraint') ?? {});
  const fk = constraints.find((c) => c.contype === 'CONSTR_FOREIGN');
  const target: TableRef | undefined = rangeVar(fk?.pktable);
  return {
    type: typeText(def.typeName),
    notNull: constraints.some((c) => c.contype === 'CONSTR_NOTNULL' || c.contype === 'CONSTR_PRIMARY') || isSerial(def),
    references: target ? tableKey(target) : undefined,
  };
}

/** `serial`, `bigserial`, `smallserial` (and `serial4`…): an integer with a sequence default, NOT NULL. */
export function isSerial(def: Node): boolean {
  const names = list((def.typeName as Node | undefined)?.names);
  const last = str(as(names.at(-1), 'String')?.sval)?.toLowerCase();
  return names.length === 1 && ['serial', 'bigserial', 'smallserial', 'serial2', 'serial4', 'serial8'].includes(last ?? '');
}
