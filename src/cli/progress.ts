import cliProgress from 'cli-progress';
import type { BackfillProgress } from '../backfill/backfill.js';
import type { Output } from './output.js';
import { holdBottomLine } from './terminal.js';

/** How often a JSON progress event is printed during a backfill. */
const JSON_PROGRESS_EVERY_MS = 3_000;

/**
 * Backfill progress for people (a bar with rows/s and ETA on a TTY) or
 * machines (a JSON line every few seconds, and whenever the backfill starts
 * or stops waiting for replicas). Returns the callback and a function that
 * closes the bar.
 */
export function progressReporter(output: Output): { onProgress: (p: BackfillProgress) => void; stop: () => void } {
  if (output.json || !process.stderr.isTTY) {
    let last = 0;
    let lastWaiting: string | null = null;
    return {
      onProgress: (p) => {
        const now = Date.now();
        const waitingChanged = (p.waiting === null) !== (lastWaiting === null);
        lastWaiting = p.waiting;
        if (!p.done && !waitingChanged && now - last < JSON_PROGRESS_EVERY_MS) return;
        last = now;
        const e = progressEvent(p);
        output.result(e, `${p.plan} backfill: ${e.done}/${e.total} rows (${e.percent}%)${p.waiting ? `, ${p.waiting}` : ''}`);
      },
      stop: () => undefined,
    };
  }
  // A MultiBar of one: it can write log lines above the bar (holdBottomLine), which a SingleBar cannot.
  let bars: cliProgress.MultiBar | null = null;
  let bar: cliProgress.SingleBar | null = null;
  const close = (): void => {
    bars?.stop();
    holdBottomLine(null);
    bars = bar = null;
  };
  return {
    onProgress: (p) => {
      if (!bars || !bar) {
        bars = new cliProgress.MultiBar(
          {
            format: `${p.plan} backfill [{bar}] {percentage}% | {value}/{total} rows | {speed} rows/s | ETA {eta_text}{waiting}`,
            stream: process.stderr,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar = bars.create(p.rowsTotal, p.rowsDone, payload(p));
        holdBottomLine(bars);
      }
      bar.setTotal(p.rowsTotal);
      bar.update(p.rowsDone, payload(p));
      if (p.done) close();
    },
    stop: close,
  };
}

/** The JSON progress event (also what `--json` consumers parse). */
export function progressEvent(p: BackfillProgress): Record<string, unknown> {
  return {
    event: 'backfill_progress',
    plan: p.plan,
    done: p.rowsDone,
    total: p.rowsTotal,
    percent: p.rowsTotal ? Math.min(100, Math.floor((1000 * p.rowsDone) / p.rowsTotal) / 10) : 100,
    rows_per_second: Math.round(p.rowsPerSecond),
    eta_seconds: p.etaSeconds === null ? null : Math.round(p.etaSeconds),
    batch_size: p.batchSize,
    waiting: p.waiting,
    finished: p.done,
  };
}

function payload(p: BackfillProgress): Record<string, string | number> {
  return {
    speed: Math.round(p.rowsPerSecond),
    eta_text: p.done ? '0s' : p.etaSeconds === null ? '?' : formatSeconds(p.etaSeconds),
    waiting: p.waiting ? ` | ${p.waiting}` : '',
  };
}

/** `1h02m`, `3m05s`, `42s`. */
export function formatSeconds(total: number): string {
  const s = Math.round(total);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}
