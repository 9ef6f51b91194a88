import { parsePlPgSQLSync, parseSync } from 'libpg-query';
import { as, list, str, type Node, type ParsedStatement } from './ast.js';

/**
 * The statements a `DO` block runs, each parsed on its own: drizzle-kit wraps
 * every foreign key in `DO $$ BEGIN … EXCEPTION WHEN duplicate_object THEN
 * null; END $$;`, and the ALTER inside takes its locks as if written bare.
 * PL/pgSQL's own parser finds the static SQL of the body (under IF, loops and
 * nested blocks too); dynamic `EXECUTE` strings are not followed. Undefined
 * when the body is not PL/pgSQL that parses: the block is then judged as is.
 */
export function doBlockStatements(s: ParsedStatement, lineAt: (offset: number) => number): ParsedStatement[] | undefined {
  const args = list(as(s.node, 'DoStmt')?.args).map((a) => as(a, 'DefElem') ?? {});
  const language = str(as(args.find((a) => a.defname === 'language')?.arg, 'String')?.sval);
  const body = args.find((a) => a.defname === 'as');
  const source = str(as(body?.arg, 'String')?.sval);
  if ((language && language.toLowerCase() !== 'plpgsql') || !source || typeof body?.location !== 'number') return undefined;
  // The body starts after its opening dollar quote ($$ or $tag$); its line 1 is that line.
  // Locations are offsets in the file, as the statement's own are.
  const quote = /^\$[A-Za-z_0-9]*\$/.exec(s.text.slice(body.location - s.offset))?.[0] ?? '';
  const bodyLine = lineAt(body.location + quote.length);
  let tree: unknown;
  try {
    tree = parsePlPgSQLSync(s.text);
  } catch {
    return undefined;
  }
  const found: ParsedStatement[] = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(walk);
    if (!n || typeof n !== 'object') return;
    const exec = as(n, 'PLpgSQL_stmt_execsql');
    if (exec) {
      const query = str(as(exec.sqlstmt, 'PLpgSQL_expr')?.query);
      const lineno = typeof exec.lineno === 'number' ? exec.lineno : 1;
      if (query) {
        try {
          const stmts = list((parseSync(query) as Node).stmts).map((x) => (x as Node).stmt as Record<string, unknown>);
          for (const node of stmts) found.push({ file: s.file, line: bodyLine + lineno - 1, text: query, offset: 0, node, inDo: true });
        } catch {
          // PL/pgSQL accepted it, so this is an expression with variables the SQL parser alone cannot read: nothing to judge.
        }
      }
      return;
    }
    Object.values(n).forEach(walk);
  };
  walk(tree);
  return found;
}
