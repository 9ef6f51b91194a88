import { table } from './output.js';
import { atText, exitText } from '../rehearse/rehearse.js';
import type { CommandCell, Rehearsal, VerifyCell } from '../rehearse/types.js';

const seconds = (ms: number | undefined): string => (ms === undefined ? '' : ` ${(ms / 1000).toFixed(1)}s`);

function commandText(cell: CommandCell): string {
  return cell.outcome === 'n.a.' ? 'n.a.' : `${cell.outcome}${seconds(cell.durationMs)}`;
}

function verifyText(cell: VerifyCell): string {
  if (cell.outcome !== 'fail' || cell.error) return cell.outcome === 'fail' ? 'fail (error)' : cell.outcome;
  return `fail (${Object.values(cell.differing ?? {}).reduce((a, b) => a + b, 0)} rows)`;
}

/** The rehearsal as people read it: the matrix, then each failure with its command's last lines. */
export function renderRehearsal(r: Rehearsal): string {
  const rows = r.steps
    .filter((s) => !s.quiet || s.migrate.outcome === 'fail')
    .map((s) => [
      s.direction,
      `${s.action} ${s.phase}`,
      atText(s),
      `${s.migrate.outcome}${seconds(s.migrate.durationMs)}`,
      commandText(s.old),
      commandText(s.new),
      verifyText(s.verify),
    ]);
  const lines = [
    `rehearsal of ${r.plans.join(', ')} in scratch database ${r.database} (${r.server === 'embedded' ? 'embedded PostgreSQL' : '--database-url server'}, dropped)` +
      (r.rows ? `, ${r.rows} synthetic rows` : ''),
    `setup: ${commandText(r.setup)}`,
    '',
    table(['direction', 'step', 'at', 'pgshift', 'old', 'new', 'verify'], rows),
    '',
  ];
  const tails: CommandCell[] = [r.setup, ...r.steps.flatMap((s) => [s.old, s.new])].filter((c) => c.outcome === 'fail');
  for (const failure of r.failures) lines.push(`FAIL ${failure}`);
  const shown = new Set<string>();
  for (const cell of tails) {
    const text = (cell.tail ?? []).map((l) => `  | ${l}`).join('\n');
    const key = `${cell.command}\n${text}`;
    if (shown.has(key)) continue;
    shown.add(key);
    lines.push('', `last lines of \`${cell.command}\` (${exitText(cell)}):`, text || '  | (no output)');
  }
  lines.push(
    '',
    r.ok ? `ok: every cell that should pass passed (${seconds(r.durationMs).trim()})` : `failed: ${r.failures.length} cell(s) that should pass did not`,
  );
  return lines.join('\n');
}
