import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { loadModule, parse } from 'libpg-query';
import type { ParsedStatement } from './ast.js';
import { doBlockStatements } from './plpgsql.js';
import { PlanError, type PlanProblem } from '../errors.js';

export type { ParsedStatement } from './ast.js';

/** The `.sql` files under each path (a file is taken as given), in a stable order. */
export async function sqlFiles(paths: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const p of paths) {
    const info = await stat(p).catch(() => null);
    if (!info) throw new PlanError([{ file: p, path: '', message: 'no such file or directory' }]);
    if (info.isFile()) found.push(p);
    else {
      const entries = (await readdir(p, { recursive: true })) as string[];
      found.push(
        ...entries
          .filter((e) => e.endsWith('.sql'))
          .sort()
          .map((e) => path.join(p, e)),
      );
    }
  }
  return found;
}

/**
 * Parse a migration file with PostgreSQL's own parser (libpg_query, through
 * WebAssembly): what PostgreSQL would run, never a guess by pattern. A file
 * that does not parse is an input error naming the file and line.
 */
export async function parseSqlFile(file: string): Promise<ParsedStatement[]> {
  const source = await readFile(file, 'utf8');
  // An empty file (tools write one for a migration with nothing to do on this database) has no statements; the parser refuses it.
  if (source === '') return [];
  await loadModule();
  let tree: { stmts?: { stmt: Record<string, unknown>; stmt_location?: number; stmt_len?: number }[] };
  try {
    tree = (await parse(source)) as typeof tree;
  } catch (error) {
    const cursor = (error as { sqlDetails?: { cursorPosition?: number } }).sqlDetails?.cursorPosition;
    const problem: PlanProblem = {
      file,
      line: cursor === undefined ? undefined : lineAt(source, cursor),
      path: '',
      message: `does not parse as SQL: ${(error as Error).message}`,
    };
    throw new PlanError([problem]);
  }
  return (tree.stmts ?? []).flatMap(({ stmt, stmt_location = 0, stmt_len }) => {
    const raw = source.slice(stmt_location, stmt_len === undefined || stmt_len === 0 ? undefined : stmt_location + stmt_len);
    // The statement's text starts after the comments and blanks that precede it.
    const lead = /^(?:\s+|--[^\n]*\n?|\/\*[\s\S]*?\*\/)*/.exec(raw)![0].length;
    const parsed: ParsedStatement = { file, line: lineAt(source, stmt_location + lead), text: raw, offset: stmt_location, node: stmt };
    // A DO block runs its statements as they are: judge them, not the block.
    return 'DoStmt' in stmt ? (doBlockStatements(parsed, (offset) => lineAt(source, offset)) ?? [parsed]) : [parsed];
  });
}

/** 1-based line of an offset in the source. */
export function lineAt(source: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < source.length; i++) if (source[i] === '\n') line++;
  return line;
}
