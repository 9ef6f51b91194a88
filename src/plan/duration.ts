import parseDuration from 'parse-duration';

const DURATION_SHAPE = /^\s*\d+(\.\d+)?\s*(ms|s|sec|m|min|h|d)?\s*$/i;

/**
 * Milliseconds from `2s`, `20ms`, `1.5m`, `7d`, or a bare number of milliseconds;
 * null when the text is not a duration.
 */
export function toMilliseconds(value: string | number): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : null;
  if (!DURATION_SHAPE.test(value)) return null;
  const ms = parseDuration(value.trim(), 'ms');
  return ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0 ? null : Math.round(ms);
}
