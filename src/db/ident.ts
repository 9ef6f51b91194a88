import { createHash } from 'node:crypto';

/** PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1). */
export const MAX_IDENTIFIER_BYTES = 63;

/** Quote an identifier for SQL: always, so any name is just a name. */
export function ident(name: string): string {
  if (name.includes('\0')) throw new Error(`identifier contains a NUL byte: ${JSON.stringify(name)}`);
  return '"' + name.replaceAll('"', '""') + '"';
}

/** Quote a string literal (standard_conforming_strings is on in every supported version). */
export function literal(value: string): string {
  if (value.includes('\0')) throw new Error('string literal contains a NUL byte');
  return "'" + value.replaceAll("'", "''") + "'";
}

/** A schema-qualified name. */
export interface QualifiedName {
  readonly schema: string;
  readonly name: string;
}

/** `"schema"."name"`. */
export function qualified(q: QualifiedName): string {
  return `${ident(q.schema)}.${ident(q.name)}`;
}

/** `schema.name` for messages (unquoted, readable). */
export function display(q: QualifiedName): string {
  return `${q.schema}.${q.name}`;
}

/**
 * A name for an object pgshift creates, kept under 63 bytes: parts joined by
 * `_`, and when too long, cut and suffixed with a hash of the whole so two
 * long names never collide after truncation.
 */
export function objectName(...parts: string[]): string {
  const whole = parts.join('_');
  if (Buffer.byteLength(whole) <= MAX_IDENTIFIER_BYTES) return whole;
  const hash = shortHash(whole);
  let cut = whole;
  while (Buffer.byteLength(cut) > MAX_IDENTIFIER_BYTES - hash.length - 1) cut = cut.slice(0, -1);
  return `${cut}_${hash}`;
}

/** First 8 hex digits of a SHA-256. */
export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

/**
 * SQL giving a function's signature, schema-qualified whatever the session's
 * search_path (`regprocedure` output leaves out a schema on the path, which
 * for a runner under `pg_catalog, pg_temp` would differ from what a user
 * sees): `public.audit()`, `pgshift.phase(text)`. `oid` is an SQL expression.
 */
export function functionSignatureSql(oid: string): string {
  return `(SELECT pg_catalog.quote_ident(fn_n.nspname) || '.' || pg_catalog.quote_ident(fn_p.proname) || '(' || pg_catalog.oidvectortypes(fn_p.proargtypes) || ')'
             FROM pg_catalog.pg_proc fn_p JOIN pg_catalog.pg_namespace fn_n ON fn_n.oid = fn_p.pronamespace WHERE fn_p.oid = ${oid})`;
}
