import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PHASES } from '../../src/phases/phases.js';
import { describeDatabase } from '../helpers/catalog.js';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * `migrate plan new` writes a plan from the live catalog that lints clean and
 * runs through all six phases, for every kind; proposes no expression it
 * cannot stand behind (placeholders `lint` refuses); and refuses, with the
 * reason, a column pgshift cannot change.
 */

const SCHEMA = new URL('../../examples/schema.sql', import.meta.url);

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(await readFile(SCHEMA, 'utf8'));
  await db.sql(`CREATE TABLE counters (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, hits bigint NOT NULL DEFAULT 0, total int)`);
  dir = await mkdtemp(path.join(os.tmpdir(), 'pgshift-new-'));
});

const cli = (...args: string[]) => runCli(['plan', ...args, '--dir', dir, '--database-url', db.url, '--json']);

async function throughSixPhases(plan: string): Promise<void> {
  const lint = await cli('lint', plan);
  expect(lint.errors, `lint ${plan}`).toBe('');
  expect(lint.code).toBe(0);
  for (const phase of PHASES) {
    const result = await cli('apply', plan, '--phase', 'next');
    expect(result.errors, `${plan} ${phase}`).toBe('');
    expect(result.code).toBe(0);
  }
}

describe('plan new', () => {
  it('add: names the column it adds, leaves the value to a person, and once written the plan runs through all six phases', async () => {
    const own = await mkdtemp(path.join(os.tmpdir(), 'pgshift-new-add-'));
    const inOwn = (...args: string[]) => runCli(['plan', ...args, '--dir', own, '--database-url', db.url, '--json']);
    const result = await inOwn('new', 'add', 'counters.label', 'text');
    expect(result.errors).toBe('');
    expect(result.lines[0]).toEqual({ event: 'new', plan: 'add-counters-label', file: path.join(own, 'add-counters-label.yaml'), placeholders: ['add.value'] });
    const file = path.join(own, 'add-counters-label.yaml');
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/add:\n {2}column: label\n {2}type: text\n {2}not_null: true\n {2}value: .*TODO\(pgshift\):/);
    const lint = await inOwn('lint');
    expect(lint.code).toBe(2);
    expect(lint.errors).toMatch(/add-counters-label\.yaml:\d+ add\.value: is a placeholder/);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, text.replace(/value: .*TODO\(pgshift\):.*/, `value: "'hits: ' || hits"`));
    for (const phase of PHASES) {
      const applied = await inOwn('apply', 'add-counters-label', '--phase', 'next');
      expect(applied.errors, phase).toBe('');
      expect(applied.code, phase).toBe(0);
    }
    // The column it names must not exist: taken, it is refused with the reason.
    const taken = await inOwn('new', 'add', 'counters.hits', 'bigint', '--name', 'add-hits-again');
    expect(taken.code).toBe(2);
    expect(taken.errors).toMatch(/add\.column: pgshift cannot make this change: column "hits" already exists/);
  });

  it.each([
    ['rename', 'users.user_name', ['username'], 'rename-users-user-name'],
    ['split', 'users.full_name', ['first_name', 'last_name'], 'split-users-full-name'],
    ['merge', 'public.customers.street,city', ['address'], 'merge-customers-street-city'],
    ['retype', 'orders.price', ['numeric(10,2)'], 'retype-orders-price'],
    ['drop', 'customers.fax', [], 'drop-customers-fax'],
    ['constrain', 'subscribers.email', ['not_null'], 'constrain-subscribers-email'],
    ['index', 'users.email', ['users_email_idx'], 'index-users-email'],
    ['rename-table', 'public.suppliers', ['vendors'], 'rename-table-suppliers-vendors'],
  ])('%s: writes a plan that lints clean and runs through all six phases', async (kind, source, targets, name) => {
    const result = await cli('new', kind, source, ...targets);
    expect(result.errors).toBe('');
    expect(result.code).toBe(0);
    expect(result.lines[0]).toEqual({ event: 'new', plan: name, file: path.join(dir, `${name}.yaml`), placeholders: [] });
    const text = await readFile(path.join(dir, `${name}.yaml`), 'utf8');
    expect(text).toMatch(/^# Written by `migrate plan new`/);
    expect(text).toMatch(/lock_timeout: 50ms +# each attempt.s lock wait: the most a query queues behind pgshift \(default\)/);
    expect(text).toMatch(/max_wait: 300s +# how long a step waits in all for its locks, then exit 3 \(default\)/);
    expect(text).toMatch(/batch_size: 5000 +# rows in the first batch/);
    await throughSixPhases(name);
  });

  it('proposes casts both ways for a retype', async () => {
    const text = await readFile(path.join(dir, 'retype-orders-price.yaml'), 'utf8');
    expect(text).toMatch(/using: price::numeric\(10,2\)\n\s+reverse: price::text/);
  });

  it('leaves placeholders that lint refuses where it cannot propose an expression', async () => {
    const result = await cli('new', 'split', 'counters.total', 'low', 'high');
    expect(result.code).toBe(0);
    expect(result.lines[0]).toMatchObject({ placeholders: ['split.into[0].using', 'split.into[1].using', 'split.reverse'] });
    const lint = await cli('lint', 'split-counters-total');
    expect(lint.code).toBe(2);
    expect(lint.errors).toMatch(/split-counters-total\.yaml:\d+ split\.into\[0\]\.using: is a placeholder/);
    expect(lint.errors).toMatch(/split\.reverse: is a placeholder/);
  });

  it('refuses, with the reason and nothing written or changed, a column pgshift cannot change', async () => {
    const before = await describeDatabase(db);
    const identity = await cli('new', 'rename', 'counters.id', 'counter_id');
    expect(identity.code).toBe(2);
    expect(identity.errors).toMatch(/pgshift cannot make this change: column "id" is an identity column/);
    const taken = await cli('new', 'rename', 'counters.hits', 'total');
    expect(taken.code).toBe(2);
    expect(taken.errors).toMatch(/column "total" already exists/);
    const missing = await cli('new', 'rename', 'counters.nope', 'x');
    expect(missing.code).toBe(2);
    expect(missing.errors).toMatch(/column "nope" does not exist in counters/);
    const tableTaken = await cli('new', 'rename-table', 'counters', 'orders');
    expect(tableTaken.code).toBe(2);
    expect(tableTaken.errors).toMatch(/pgshift cannot make this change: a table named "orders" already exists in schema "public"/);
    expect(await describeDatabase(db)).toEqual(before);
    const again = await cli('new', 'rename', 'users.email', 'username');
    expect(again.code).toBe(2);
  });

  it('never writes over a plan file', async () => {
    await db.sql(`CREATE TABLE notes (id int PRIMARY KEY, body text)`);
    expect((await cli('new', 'rename', 'notes.body', 'text', '--name', 'notes-body')).code).toBe(0);
    const second = await cli('new', 'rename', 'notes.body', 'content', '--name', 'notes-body');
    expect(second.code).toBe(2);
    expect(second.errors).toMatch(/notes-body\.yaml: already exists/);
    expect(await readFile(path.join(dir, 'notes-body.yaml'), 'utf8')).toMatch(/to: text/);
  });
});
