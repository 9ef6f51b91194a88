import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { apply, PlanError, rollback, show, verify, type Phase, type Plan } from '../../src/index.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { plan } from '../helpers/fixtures.js';

/**
 * retype through the six phases on a table under concurrent writes: a writer
 * runs the old code (old column only) until switch-read, both versions side
 * by side until stop-write, the new code (new column only) after; forward,
 * all the way back, and forward to contract. Every value it wrote must be
 * there at the end. And the in-place path for binary-coercible changes.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(`
    CREATE TABLE products (id bigserial PRIMARY KEY, price text NOT NULL);
    INSERT INTO products (price) SELECT (g % 1000) || '.' || lpad((g % 100)::text, 2, '0') FROM generate_series(1, 3000) g;
    CREATE TABLE stock (id bigserial PRIMARY KEY, quantity int NOT NULL DEFAULT 0);
    INSERT INTO stock (quantity) SELECT g FROM generate_series(1, 3000) g;
    CREATE TABLE notes (id bigserial PRIMARY KEY, body varchar(50) NOT NULL DEFAULT '');
    CREATE INDEX notes_body_idx ON notes (body);
    INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 100) g;
    CREATE TABLE tags (id bigserial PRIMARY KEY, label varchar);
    INSERT INTO tags (label) SELECT 'tag ' || g FROM generate_series(1, 100) g;`);
});

type Mode = 'old' | 'both' | 'new';

/** How each code version writes a value (text form) of the column, and reads it back. */
interface Versions {
  readonly table: string;
  readonly oldColumn: string;
  readonly newColumn: string;
  /** A value both types hold exactly, in the text form both give back. */
  readonly value: (i: number) => string;
}

/** A writer on its own connection, inserting and updating in a loop; `expected` is what each row must hold. */
interface Writer {
  mode: Mode;
  writes: number;
  readonly expected: Map<string, string>;
  /** Wait until the writer is between two writes and keep it there until `resume`. */
  pause(): Promise<void>;
  resume(): void;
  stop(): Promise<void>;
}

function startWriter(v: Versions): Writer {
  let running = true;
  let paused = null as { idle: () => void; resume: Promise<void>; go: () => void } | null;
  const writer: Writer = {
    mode: 'old',
    writes: 0,
    expected: new Map(),
    pause: () =>
      new Promise<void>((idle) => {
        let go!: () => void;
        paused = { idle, resume: new Promise<void>((r) => (go = r)), go };
      }),
    resume: () => {
      paused?.go();
      paused = null;
    },
    stop: async () => {
      running = false;
      writer.resume();
      await done;
    },
  };
  const done = (async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    let i = 0;
    try {
      while (running) {
        if (paused) {
          paused.idle();
          await paused.resume;
          continue;
        }
        const side = writer.mode === 'both' ? (i % 2 ? 'new' : 'old') : writer.mode;
        const col = side === 'old' ? v.oldColumn : v.newColumn;
        const value = v.value(i++);
        const { rows } = await client.query<{ id: string }>(`INSERT INTO ${v.table} (${col}) VALUES ($1) RETURNING id`, [value]);
        writer.expected.set(rows[0]!.id, value);
        const target = String(1 + (i % 3000));
        const updated = v.value(i++);
        await client.query(`UPDATE ${v.table} SET ${col} = $1 WHERE id = $2`, [updated, target]);
        writer.expected.set(target, updated);
        writer.writes += 2;
      }
    } finally {
      await client.end();
    }
  })();
  return writer;
}

async function applyTo(p: Plan, phase: Phase): Promise<void> {
  const [outcome] = await apply([p], phase, { databaseUrl: db.url });
  expect(outcome!.error).toBeUndefined();
}

async function rollbackTo(p: Plan, phase: Phase): Promise<void> {
  const outcome = await rollback(p, phase, { databaseUrl: db.url });
  expect(outcome.error).toBeUndefined();
}

/** Rows whose `column` (as text) is not what the writer last wrote. */
async function mismatches(table: string, column: string, expected: Map<string, string>): Promise<string[]> {
  const rows = await db.sql<{ id: string; v: string }>(`SELECT id::text AS id, ${column}::text AS v FROM ${table} WHERE id = ANY ($1::bigint[])`, [
    [...expected.keys()],
  ]);
  const got = new Map(rows.map((r) => [r.id, r.v]));
  return [...expected].filter(([id, value]) => got.get(id) !== value).map(([id, value]) => `${id}: wrote ${value}, has ${got.get(id)}`);
}

async function columnOf(table: string, column: string): Promise<{ type: string; notNull: boolean } | undefined> {
  const [row] = await db.sql<{ type: string; notNull: boolean }>(
    `SELECT format_type(atttypid, atttypmod) AS type, attnotnull AS "notNull" FROM pg_attribute
      WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped`,
    [table, column],
  );
  return row;
}

/** Change which code versions write, between two writes (a deploy), and let them write a while. */
async function deploy(writer: Writer, mode: Mode): Promise<void> {
  await writer.pause();
  writer.mode = mode;
  writer.resume();
  const from = writer.writes;
  while (writer.writes < from + 20) await new Promise((r) => setTimeout(r, 5));
}

/**
 * Forward to stop-write, back to nothing, forward to contract: the writer
 * never stops. Old code retires before stop-write (from then on the old
 * column is derived) and new code before switch-read is rolled back.
 */
async function roundTrip(p: Plan, v: Versions): Promise<Writer> {
  const writer = startWriter(v);
  try {
    for (const phase of ['expand', 'dual-write', 'backfill', 'switch-read'] as const) await applyTo(p, phase);
    await deploy(writer, 'both');
    await deploy(writer, 'new');
    await applyTo(p, 'stop-write');
    await rollbackTo(p, 'stop-write');
    await deploy(writer, 'both');
    await deploy(writer, 'old');
    await rollbackTo(p, 'switch-read');
    await rollbackTo(p, 'expand');
    await writer.pause();
    // Back at the start: every write of either version is in the old column.
    expect(await mismatches(v.table, v.oldColumn, writer.expected)).toEqual([]);
    expect(await columnOf(v.table, v.newColumn)).toBeUndefined();
    writer.resume();
    for (const phase of ['expand', 'dual-write', 'backfill', 'switch-read'] as const) await applyTo(p, phase);
    await deploy(writer, 'both');
    await deploy(writer, 'new');
    await applyTo(p, 'stop-write');
    await applyTo(p, 'contract');
  } finally {
    await writer.stop();
  }
  return writer;
}

describe('retype under concurrent writes', () => {
  it('text → numeric(10,2), through the derived column price_new', async () => {
    const p = plan(`
plan: retype-price
table: products
retype: { column: price, to: "numeric(10,2)", using: "price::numeric(10,2)", reverse: "price::text" }
backfill: { batch_size: 400, pause: 0ms }
guards: { lock_timeout: 2s, statement_timeout: 20s, retries: 5 }`);
    const [expand] = await show(p, 'expand', { databaseUrl: db.url });
    expect(expand!.apply.flatMap((s) => (s.kind === 'sql' ? s.statements : []))).toEqual([
      'ALTER TABLE "public"."products" ADD COLUMN IF NOT EXISTS "price_new" numeric(10,2)',
    ]);
    const { expected, writes } = await roundTrip(p, {
      table: 'products',
      oldColumn: 'price',
      newColumn: 'price_new',
      value: (i) => `${i % 100000}.${String(i % 100).padStart(2, '0')}`,
    });
    expect(writes).toBeGreaterThan(0);
    expect(await mismatches('products', 'price_new', expected)).toEqual([]);
    expect(await columnOf('products', 'price')).toBeUndefined();
    expect(await columnOf('products', 'price_new')).toEqual({ type: 'numeric(10,2)', notNull: true });
    expect(await db.sql(`SELECT price_new::text AS v FROM products WHERE id = 1`)).toEqual([{ v: '1.01' }]);
  });

  it('int → bigint, with the new column named by "as"', async () => {
    const p = plan(`
plan: retype-quantity
table: stock
retype: { column: quantity, to: bigint, as: quantity_big, using: "quantity::bigint", reverse: "quantity::int", default: "0" }
backfill: { batch_size: 400, pause: 0ms }
guards: { lock_timeout: 2s, statement_timeout: 20s, retries: 5 }`);
    const { expected } = await roundTrip(p, { table: 'stock', oldColumn: 'quantity', newColumn: 'quantity_big', value: (i) => String(i * 7) });
    expect(await mismatches('stock', 'quantity_big', expected)).toEqual([]);
    expect(await columnOf('stock', 'quantity_big')).toEqual({ type: 'bigint', notNull: true });
    // New code may leave it out: the declared default.
    const [row] = await db.sql<{ q: string }>(`INSERT INTO stock DEFAULT VALUES RETURNING quantity_big::text AS q`);
    expect(row!.q).toBe('0');
  });
});

describe('retype in place', () => {
  it('varchar(50) → text is one metadata-only ALTER in expand; going back would rewrite, so it is refused', async () => {
    const p = plan(`
plan: retype-body
table: notes
retype: { column: body, to: text, using: "body::text", reverse: "body::varchar(50)" }`);
    const shown = await show(p, undefined, { databaseUrl: db.url });
    const expand = shown.find((s) => s.phase === 'expand')!;
    expect(expand.apply).toHaveLength(1);
    expect(expand.apply[0]!.description).toMatch(/in place: metadata-only/);
    expect(expand.apply[0]).toMatchObject({ statements: ['ALTER TABLE "public"."notes" ALTER COLUMN "body" TYPE text USING (body::text)'] });
    expect(expand.rollback[0]).toMatchObject({ kind: 'refuse' });
    for (const s of shown.filter((s) => s.phase !== 'expand')) expect([...s.apply, ...s.rollback]).toEqual([]);

    const files = async (): Promise<unknown[]> =>
      db.sql(`SELECT relname, relfilenode FROM pg_class WHERE oid IN ('notes'::regclass, 'notes_body_idx'::regclass) ORDER BY 1`);
    const before = await files();
    await db.sql(`INSERT INTO notes (body) VALUES ('old code, at most fifty characters')`);
    await applyTo(p, 'expand');
    // Neither the table nor its index was rewritten.
    expect(await files()).toEqual(before);
    expect(await columnOf('notes', 'body')).toEqual({ type: 'text', notNull: true });
    await db.sql(`INSERT INTO notes (body) VALUES ('old code, at most fifty characters')`);
    await db.sql(`INSERT INTO notes (body) VALUES (repeat('new code writes longer ', 5))`);
    // Done in place, there is no second side to compare: verify says 0, not an error.
    expect((await verify(p, { databaseUrl: db.url })).differing).toBe(0);

    const refused = await rollback(p, 'current', { databaseUrl: db.url });
    expect(refused.error).toBeInstanceOf(PlanError);
    expect(refused.error!.message).toMatch(/would check or rewrite every row under ACCESS EXCLUSIVE/);
    expect(await columnOf('notes', 'body')).toEqual({ type: 'text', notNull: true });

    await applyTo(p, 'contract');
    expect(await files()).toEqual(before);
    expect(await db.sql(`SELECT count(*)::int AS n FROM notes WHERE length(body) > 50`)).toEqual([{ n: 1 }]);
  });

  it('varchar → text rolls back in place too', async () => {
    const p = plan(`
plan: retype-label
table: tags
retype: { column: label, to: text, using: "label::text", reverse: "label::varchar" }`);
    await applyTo(p, 'expand');
    expect(await columnOf('tags', 'label')).toEqual({ type: 'text', notNull: false });
    await rollbackTo(p, 'expand');
    expect(await columnOf('tags', 'label')).toEqual({ type: 'character varying', notNull: false });
  });

  it('is not used when the cast rewrites, or when a new column is asked for', async () => {
    const rewrite = plan(`
plan: retype-body-upper
table: notes
retype: { column: body, to: text, using: "upper(body)", reverse: "lower(body)::varchar(50)" }`);
    const [a] = await show(rewrite, 'expand', { databaseUrl: db.url });
    expect(a!.apply[0]!.description).toMatch(/^add body_new.*not an in-place ALTER TYPE: changing .+ to text with this "using" rewrites/);
    // The copy says what contract drops and what stays on the archived column until purge.
    const [contract] = await show(rewrite, 'contract', { databaseUrl: db.url });
    expect(contract!.apply[1]!.description).toMatch(
      /index notes_body_idx, not carried to the new type: an index goes with the step before, a constraint stays on the archive/,
    );
    const named = plan(`
plan: retype-label-named
table: tags
retype: { column: label, to: text, as: label_text, using: "label::text", reverse: "label::varchar" }`);
    const [b] = await show(named, 'expand', { databaseUrl: db.url });
    expect(b!.apply[0]!.description).toMatch(/^add label_text.*retype\.as asks for a new column "label_text"/);
  });
});
