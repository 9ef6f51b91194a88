import { spawn } from 'node:child_process';
import type { CommandCell } from './types.js';

/** Output kept from a command while it runs: enough for its last lines, bounded whatever it prints. */
const KEEP_BYTES = 64 * 1024;
/** After SIGTERM, how long a command's process group gets before SIGKILL. */
const KILL_GRACE_MS = 2_000;

/**
 * Run `command` through the shell with `env` added to ours, keeping the last
 * `tailLines` lines of its output. It runs in a process group of its own so
 * that aborting ends it and everything it started (a test runner's workers),
 * not just the shell.
 */
export async function runCommand(command: string, env: Readonly<Record<string, string>>, tailLines: number, signal?: AbortSignal): Promise<CommandCell> {
  const started = performance.now();
  const child = spawn(command, {
    shell: true,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: process.platform !== 'win32',
  });
  let kept = '';
  const keep = (chunk: Buffer): void => {
    kept = (kept + chunk.toString()).slice(-KEEP_BYTES);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stop = (): void => {
    killGroup(child.pid, 'SIGTERM');
    setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS).unref();
  };
  signal?.addEventListener('abort', stop, { once: true });
  try {
    const { code, sig } = await new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve) => {
      child.on('error', (error) => {
        keep(Buffer.from(`${error.message}\n`));
        resolve({ code: null, sig: null });
      });
      child.on('close', (c, s) => resolve({ code: c, sig: s }));
    });
    const ok = code === 0;
    return {
      outcome: ok ? 'pass' : 'fail',
      command,
      durationMs: Math.round(performance.now() - started),
      exitCode: code,
      signal: sig,
      ...(ok ? {} : { tail: lastLines(kept, tailLines) }),
    };
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

/** The last `n` non-empty lines of `text`. */
export function lastLines(text: string, n: number): string[] {
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '')
    .slice(-n);
}

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    // A negative pid signals the whole group the detached child leads.
    process.kill(process.platform === 'win32' ? pid : -pid, sig);
  } catch {
    // Already gone.
  }
}
