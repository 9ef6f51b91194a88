import type { Command } from 'commander';
import { detect, type Detection } from '../../api/detect.js';
import { ExitCode } from '../../errors.js';
import type { Run } from './types.js';

/** `migrate plan detect <files or dirs...> [--write] [--dir plans]` */
export function detectCommand(plan: Command, run: Run): void {
  plan
    .command('detect')
    .argument('<paths...>', 'SQL migration files, or folders searched for .sql files')
    .description('find statements in SQL migrations that would break running code or take long locks (exit 1 when any)')
    .option('--write', 'write the plans that replace the column changes into --dir (existing files are kept)')
    .option('--dir <path>', 'where --write puts plan files', 'plans')
    .option('--json', 'print JSON lines (the default when stdout is not a TTY)')
    .option('--no-json', 'print human text even when stdout is not a TTY')
    .action(async (paths: string[], o: { write?: boolean; dir: string; json?: boolean }) =>
      run({ ...o, schema: '' }, async (output) => {
        const result = await detect(paths, { writeTo: o.write ? o.dir : undefined });
        for (const f of result.findings) output.result({ event: 'unsafe', ...f, plan: f.plan?.name, plan_yaml: f.plan?.yaml }, describe(f));
        const summary = `${result.findings.length} unsafe statement(s) in ${result.files.length} file(s)`;
        output.result(
          { event: 'detect', files: result.files.length, unsafe: result.findings.length, written: result.written },
          [summary, ...result.written.map((w) => `wrote ${w}`)].join('\n'),
        );
        return result.findings.length ? { exitCode: ExitCode.failed } : {};
      }),
    );
}

function describe(f: Detection): string {
  const lines = [`${f.file}:${f.line}: ${f.why}`, `  instead: ${f.fix}`];
  if (f.plan)
    lines.push(
      `  plan ${f.plan.name}.yaml:`,
      ...f.plan.yaml
        .trimEnd()
        .split('\n')
        .map((l) => `    ${l}`),
    );
  return lines.join('\n');
}
