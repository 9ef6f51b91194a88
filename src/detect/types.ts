/**
 * Whether `ALTER COLUMN … TYPE next` (without USING) leaves every row as it
 * is, judged from the column's type as earlier statements defined it. Only
 * the changes PostgreSQL documents as free are accepted: the same type; a
 * `varchar(n)` to `text`, to unbounded `varchar` or to `varchar(m)`, m ≥ n
 * (binary-coercible, or a length check that cannot fail); `text` to
 * unbounded `varchar`; `numeric(p,s)` to unconstrained `numeric` or to
 * `numeric(q,s)`, q ≥ p. An unknown old type is never free.
 */
export function rewriteFree(old: string | undefined, next: string | undefined): boolean {
  if (!old || !next) return false;
  if (old === next) return true;
  const o = parts(old);
  const n = parts(next);
  if (!o || !n || o.array !== n.array) return false;
  if (o.base === 'varchar' || o.base === 'text') {
    if (n.base === 'text') return o.base === 'varchar';
    if (n.base !== 'varchar') return false;
    if (n.mods.length === 0) return true;
    return o.base === 'varchar' && o.mods.length === 1 && n.mods[0]! >= o.mods[0]!;
  }
  if (o.base === 'numeric' && n.base === 'numeric') {
    if (n.mods.length === 0) return true;
    if (o.mods.length === 0) return false;
    const [op, os = 0] = o.mods;
    const [np, ns = 0] = n.mods;
    return ns === os && np! >= op!;
  }
  return false;
}

function parts(type: string): { base: string; mods: number[]; array: string } | undefined {
  const m = /^([a-z ]+)(?:\(([\d,]+)\))?((?:\[\])*)$/.exec(type);
  if (!m) return undefined;
  return { base: m[1]!, mods: m[2] ? m[2].split(',').map(Number) : [], array: m[3] ?? '' };
}
