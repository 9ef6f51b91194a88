import cliProgress from 'cli-progress';
import type { BackfillProgress } from '../backfill/backfill.js';
import type { Output } from './output.js';

/** How often a JSON progress event is printed during a backfill. */
const JSON_PROGRESS_EVERY_MS = 3_000;

/**
 * Backfill progress for people (a bar with rows/s and ETA on a TTY) or
 * machines (a JSON line every few seconds). Returns the callback and a
 * function that closes the bar.
 */
export function progressReporter(output: Output): { onProgress: (p: BackfillProgress) => void; stop: () => void } {
  if (output.json || !process.stderr.isTTY) {
    let last = 0;
    return {
      onProgress: (p) => {
        const now = Date.now();
        if (!p.done && now - last < JSON_PROGRESS_EVERY_MS) return;
        last = now;
        output.result({ event: 'backfill_progress', plan: p.plan, done: p.rowsDone, total: p.rowsTotal, batch_size: p.batchSize, finished: p.done }, '');
      },
      stop: () => undefined,
    };
  }
  let bar: cliProgress.SingleBar | null = null;
  return {
    onProgress: (p) => {
      if (!bar) {
        bar = new cliProgress.SingleBar(
          { format: `${p.plan} backfill [{bar}] {percentage}% | {value}/{total} rows | {speed} rows/s | ETA {eta_formatted}`, stream: process.stderr },
          cliProgress.Presets.shades_classic,
        );
        bar.start(p.rowsTotal, p.rowsDone, { speed: 0 });
      }
      bar.setTotal(p.rowsTotal);
      bar.update(p.rowsDone, { speed: Math.round(speedOf(bar, p.rowsDone)) });
      if (p.done) bar.stop();
    },
    stop: () => bar?.stop(),
  };
}

function speedOf(bar: cliProgress.SingleBar, done: number): number {
  const started = (bar as unknown as { startTime?: number }).startTime ?? Date.now();
  const seconds = (Date.now() - started) / 1000;
  return seconds > 0 ? done / seconds : 0;
}
