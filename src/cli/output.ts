/** Where and how the CLI prints: human text on a TTY, JSON lines otherwise. */
export interface Output {
  readonly json: boolean;
  /** A result line: an object in JSON mode, its text otherwise. */
  result(object: Record<string, unknown>, text: string): void;
  /** A whole JSON document (status --json prints one array). */
  document(value: unknown): void;
  error(message: string, object?: Record<string, unknown>): void;
}

/** Strip a secret (the password) from anything printed. */
export type Redact = (text: string) => string;

/** Build the output for this run. */
export function createOutput(json: boolean, redact: Redact, out = process.stdout, err = process.stderr): Output {
  const write = (stream: NodeJS.WritableStream, text: string): void => void stream.write(redact(text) + '\n');
  return {
    json,
    result: (object, text) => write(out, json ? JSON.stringify(object) : text),
    document: (value) => write(out, JSON.stringify(value, null, json ? undefined : 2)),
    error: (message, object) => write(err, json ? JSON.stringify({ event: 'error', message, ...object }) : `error: ${message}`),
  };
}

/** A redactor for the passwords of connection URLs (and PGPASSWORD). */
export function redactorFor(urls: readonly (string | undefined)[]): Redact {
  const passwords = [
    ...urls.map((url) => {
      try {
        return url ? decodeURIComponent(new URL(url).password) : '';
      } catch {
        return '';
      }
    }),
    process.env.PGPASSWORD ?? '',
  ].filter(Boolean);
  return (text) => passwords.reduce((t, p) => t.split(p).join('***'), text);
}

/** Render rows as an aligned text table. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** "4 min ago" for a moment in the past, as a person reads a status line. */
export function ago(when: Date, now: Date = new Date()): string {
  const seconds = Math.max(0, Math.round((now.getTime() - when.getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} days ago`;
}
