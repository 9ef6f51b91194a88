import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * The root logger: JSON on stderr, level from `PGSHIFT_LOG_LEVEL` (default
 * `info`). Tests get a silent one unless they set the variable.
 */
export function createLogger(level?: string): Logger {
  const chosen = level ?? process.env.PGSHIFT_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');
  return pino({ level: chosen, base: undefined, redact: ['password', '*.password', 'connectionString'] }, pino.destination(2));
}

/** A logger that drops everything; the default for library callers. */
export const silentLogger: Logger = pino({ level: 'silent' });
