import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { findUnsafe, type Finding } from '../detect/rules.js';
import { SchemaModel } from '../detect/schema.js';
import { parseSqlFile, sqlFiles } from '../detect/sql-files.js';
import { suggestPlan, type SuggestedPlan } from '../detect/suggest.js';

/** One unsafe statement, with the plan that replaces it when pgshift can. */
export interface Detection extends Finding {
  readonly plan?: SuggestedPlan | undefined;
}

/** What `detect` read and found. */
export interface DetectResult {
  /** The `.sql` files read, in order. */
  readonly files: readonly string[];
  readonly findings: readonly Detection[];
  /** Plan files written (`write`), by path. */
  readonly written: readonly string[];
}

/**
 * Read SQL migration files (a file, or every `.sql` under a folder), parse
 * them with PostgreSQL's parser, and report each statement that would break
 * the code running during a deploy or take a long lock, with the pgshift plan
 * that replaces it for the column changes pgshift handles. With `writeTo`,
 * write those plans there (never overwriting a file). Reads files only; no
 * database.
 */
export async function detect(paths: readonly string[], options: { writeTo?: string | undefined } = {}): Promise<DetectResult> {
  const files = await sqlFiles(paths);
  const findings: Detection[] = [];
  // Files are read in order, each judged against the tables the ones before it define.
  const schema = new SchemaModel();
  for (const file of files) {
    for (const f of findUnsafe(await parseSqlFile(file), schema)) {
      findings.push({ ...f, plan: f.change ? suggestPlan(f.change, `${f.file}:${f.line}`) : undefined });
    }
  }
  const written: string[] = [];
  if (options.writeTo) {
    await mkdir(options.writeTo, { recursive: true });
    for (const plan of new Map(findings.flatMap((f) => (f.plan ? [[f.plan.name, f.plan] as const] : []))).values()) {
      const target = path.join(options.writeTo, `${plan.name}.yaml`);
      const made = await writeFile(target, plan.yaml, { flag: 'wx' }).then(
        () => true,
        (error: NodeJS.ErrnoException) => (error.code === 'EEXIST' ? false : Promise.reject(error)),
      );
      if (made) written.push(target);
    }
  }
  return { files, findings, written };
}
