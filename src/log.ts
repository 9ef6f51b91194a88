import pino, { type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';

export type { Logger };

/** Where human log lines go (a terminal that may have a progress bar to keep below them). */
export interface HumanLog {
  write(text: string): void;
  readonly colorize: boolean;
}

/**
 * The root logger, level from `PGSHIFT_LOG_LEVEL` (default `info`); tests
 * get a silent one unless they set the variable. JSON lines on stderr, or,
 * given `human` (a terminal), one line per event for people: the time, the
 * level, the plan and phase, and the message, which names what matters; the
 * event's other fields stay out of the way (`--json` has them all).
 */
export function createLogger(level?: string, human?: HumanLog): Logger {
  const chosen = level ?? process.env.PGSHIFT_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');
  const options = { level: chosen, base: undefined, redact: ['password', '*.password', 'connectionString'] };
  if (!human) return pino(options, pino.destination(2));
  const pretty = prettyFactory({
    colorize: human.colorize,
    hideObject: true,
    translateTime: 'SYS:HH:MM:ss',
    ignore: 'plan,phase,action',
    messageFormat: (event, key) => `${event.plan ? `${String(event.plan)}${event.phase ? ` ${String(event.phase)}` : ''}: ` : ''}${String(event[key])}`,
  });
  return pino(options, { write: (line: string) => human.write(pretty(line)) });
}

/** A logger that drops everything; the default for library callers. */
export const silentLogger: Logger = pino({ level: 'silent' });
