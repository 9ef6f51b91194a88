import { describe, expect, it } from 'vitest';
import { STATE_MIGRATIONS, STATE_TABLES } from '../../src/state/migrations.js';

/**
 * STATE_TABLES is what tells pgshift's own tables from others in the state
 * schema: it must name exactly the tables the state migrations create, so a
 * table added by a new migration step cannot be left out of it.
 */
describe('the state tables', () => {
  it('are exactly the tables the state migrations create', () => {
    const created = STATE_MIGRATIONS.flatMap((m) => m.statements('pgshift')).flatMap((sql) =>
      [...sql.matchAll(/CREATE TABLE (?:IF NOT EXISTS )?"pgshift"\.(\w+)/g)].map((match) => match[1]!),
    );
    expect(created.length).toBeGreaterThan(0);
    expect([...STATE_TABLES].sort()).toEqual([...new Set(created)].sort());
  });
});
