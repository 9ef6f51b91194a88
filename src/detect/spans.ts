import { scanSync } from 'libpg-query';
import { startOf, type Node, type ParsedStatement } from './ast.js';

/**
 * The source text of a retype's parts, cut at PostgreSQL's own tokens: the
 * parse tree gives where a type and a USING expression start, and the
 * scanner (string literals, quoted names and comments taken as PostgreSQL
 * takes them) where they end: at USING, or at the `,` or `;` that closes
 * the command, outside parentheses. This version of libpg-query has no
 * deparser, so the file's own text is what a plan quotes.
 */
export interface RetypeSpans {
  /** The type as written (`DECIMAL(10,2)`, `"ScoreSource_new"`). */
  readonly type: string | undefined;
  /** The USING expression as written, parentheses included. */
  readonly using: string | undefined;
}

interface Token {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

export function retypeSpans(def: Node | undefined, s: ParsedStatement): RetypeSpans {
  const typeStart = (def?.typeName as Node | undefined)?.location;
  if (typeof typeStart !== 'number') return { type: undefined, using: undefined };
  const tokens = (scanSync(s.text).tokens as Token[]).map((t) => ({ ...t, start: t.start + s.offset, end: t.end + s.offset }));
  const typeEnd = clauseEnd(tokens, typeStart, true);
  const type = slice(s, typeStart, typeEnd.end);
  if (startOf(def?.raw_default) === undefined || !typeEnd.using) return { type, using: undefined };
  const from = tokens.find((t) => t.start > typeEnd.using!.start);
  if (!from) return { type, using: undefined };
  return { type, using: slice(s, from.start, clauseEnd(tokens, from.start, false).end) };
}

/** Where the clause starting at `from` ends: the last token before a top-level `,` `;` (or USING, when asked). */
function clauseEnd(tokens: readonly Token[], from: number, stopAtUsing: boolean): { end: number; using?: Token } {
  let depth = 0;
  let end = from;
  for (const t of tokens) {
    if (t.start < from) continue;
    if (t.text === '(' || t.text === '[') depth++;
    else if (t.text === ')' || t.text === ']') depth--;
    else if (depth === 0 && (t.text === ',' || t.text === ';')) break;
    else if (depth === 0 && stopAtUsing && t.text.toUpperCase() === 'USING') return { end, using: t };
    if (depth < 0) break;
    end = t.end;
  }
  return { end };
}

function slice(s: ParsedStatement, start: number, end: number): string | undefined {
  return s.text.slice(start - s.offset, end - s.offset).trim() || undefined;
}
