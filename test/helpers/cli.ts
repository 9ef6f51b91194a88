import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/migrate.js', import.meta.url));

/** What a CLI run printed and how it ended. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as JSON lines (non-JSON lines skipped). */
  readonly lines: Record<string, unknown>[];
  /** Error messages printed on stderr (JSON error events, or `error: ...` lines), joined by newlines. */
  readonly errors: string;
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{') || l.startsWith('['))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

/** Start `migrate` as a real process (it is built by `npm test` first). */
export function startCli(args: readonly string[], env: Record<string, string | undefined> = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, PGSHIFT_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) =>
    child.on('close', (code) =>
      resolve({
        code,
        stdout,
        stderr,
        lines: jsonLines(stdout),
        errors: [
          ...jsonLines(stderr)
            .filter((l) => l.event === 'error')
            .map((l) => String(l.message)),
          ...stderr.split('\n').filter((l) => l.startsWith('error: ')),
        ].join('\n'),
      }),
    ),
  );
  return { child, done };
}

/** Run `migrate` to completion. */
export function runCli(args: readonly string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return startCli(args, env).done;
}
