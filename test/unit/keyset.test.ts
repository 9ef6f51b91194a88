import { describe, expect, it } from 'vitest';
import { batchEndSql, rangeCountSql, rangeWhere, readKey, upperKeySql } from '../../src/backfill/keyset.js';

const table = { schema: 'app', name: 'Orders' };
const single = [{ name: 'id', type: 'bigint' }];
const composite = [
  { name: 'tenant', type: 'integer' },
  { name: 'order "no"', type: 'text' },
];

describe('keyset SQL', () => {
  it('bounds a range by row comparison, with typed text parameters', () => {
    expect(rangeWhere(single, true, true, 1)).toBe('ROW("id") > ROW($1::bigint) AND ROW("id") <= ROW($2::bigint)');
    expect(rangeWhere(composite, true, true, 1)).toBe(
      'ROW("tenant", "order ""no""") > ROW($1::integer, $2::text) AND ROW("tenant", "order ""no""") <= ROW($3::integer, $4::text)',
    );
    expect(rangeWhere(composite, false, true, 1)).toBe('ROW("tenant", "order ""no""") <= ROW($1::integer, $2::text)');
    expect(rangeWhere(single, false, false, 1)).toBe('true');
  });

  it('finds a batch end by offset over the key index, never listing keys', () => {
    expect(batchEndSql(table, composite, true, true).replace(/\s+/g, ' ')).toBe(
      'SELECT "tenant"::text AS k0, "order ""no"""::text AS k1 FROM "app"."Orders" WHERE ROW("tenant", "order ""no""") > ROW($2::integer, $3::text) ' +
        'AND ROW("tenant", "order ""no""") <= ROW($4::integer, $5::text) ORDER BY "tenant" ASC, "order ""no""" ASC OFFSET $1::int8 - 1 LIMIT 1',
    );
  });

  it('fixes the upper key as the last key now, and counts the last partial batch', () => {
    expect(upperKeySql(table, single)).toBe('SELECT "id"::text AS k0 FROM "app"."Orders" ORDER BY "id" DESC LIMIT 1');
    expect(rangeCountSql(table, single, true)).toBe(
      'SELECT count(*)::float8 AS n FROM "app"."Orders" WHERE ROW("id") > ROW($1::bigint) AND ROW("id") <= ROW($2::bigint)',
    );
  });

  it('reads keys back as text', () => {
    expect(readKey({ k0: '7', k1: 'a b' }, composite)).toEqual(['7', 'a b']);
  });
});
