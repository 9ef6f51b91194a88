import { LOCK_WAIT_SLACK_MS, type ScenarioReport } from './scenario.js';

const ms = (value: number): string => (value >= 100 ? `${Math.round(value)} ms` : `${value.toFixed(1)} ms`);

/** The per-phase table of a run, as Markdown (it reads as plain text too). */
export function formatTable(report: ScenarioReport): string {
  const header = ['phase', 'releases', 'took', 'client tx', 'errors', 'p50', 'p99', 'max', 'max wait on a lock', 'sides differ', 'lost/wrong rows'];
  const rows = report.windows.map((w) => [
    w.window,
    w.releases.join(' → '),
    w.applyMs === null ? '–' : ms(w.applyMs),
    String(w.transactions),
    String(w.errors),
    ms(w.p50Ms),
    ms(w.p99Ms),
    ms(w.maxMs),
    w.lockWait ? ms(w.lockWait.ms) : '0 ms',
    w.differing === null ? '–' : String(w.differing),
    String(w.failedRows),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The table, the checker's verdict, and every violation of the bar with its evidence. */
export function formatReport(name: string, report: ScenarioReport): string {
  const worst = report.windows.reduce<{ ms: number; where: string; behind: string | null } | null>(
    (best, w) =>
      w.lockWait && (!best || w.lockWait.ms > best.ms) ? { ms: w.lockWait.ms, where: `${w.window}: ${w.lockWait.lock}`, behind: w.lockWait.blockedBy } : best,
    null,
  );
  const lines = [
    `${name} scenario, plan ${report.plan}, PostgreSQL ${report.server}: ${report.seedRows} seeded rows, ${report.clients} clients` +
      (report.slowHoldMs ? `, and a slow request holding its transaction ${report.slowHoldMs} ms as each phase starts` : ''),
    '',
    formatTable(report),
    '',
    report.check.sides.length
      ? `checker: ${report.check.rows} rows compared (${report.writes} acknowledged writes, ${report.check.sharedRows} hot rows written by every client) through the ${report.check.sides.join(' and ')} columns: ` +
        (report.check.failed ? `${report.check.failed} lost or wrong` : '0 lost, 0 wrong')
      : `checker: did not run (${report.writes} acknowledged writes unchecked)`,
    `client errors: ${report.errors.length}`,
    `longest lock wait: ${worst ? `${ms(worst.ms)} (${worst.where}${worst.behind ? `, behind ${worst.behind}` : ''})` : 'none seen'}; bar: lock_timeout ${report.lockTimeoutMs} ms + ${LOCK_WAIT_SLACK_MS} ms`,
    report.violations.length
      ? `BAR MISSED: ${report.violations.join('; ')}`
      : `bar met: 0 errors, 0 lost or wrong writes, no wait over lock_timeout + ${LOCK_WAIT_SLACK_MS} ms`,
  ];
  for (const e of report.errors.slice(0, 20)) lines.push(`  error in ${e.window} (${e.version} ${e.op}): ${e.code ? `[${e.code}] ` : ''}${e.message}`);
  if (report.errors.length > 20) lines.push(`  … and ${report.errors.length - 20} more errors`);
  for (const f of report.check.findings.slice(0, 20)) {
    const expected = f.candidates > 1 ? `one of its ${f.candidates} writes, the last acknowledged being` : 'expected';
    lines.push(
      `  ${f.kind} row ${f.id} (last written in ${f.window} by ${f.version}): ${expected} ${JSON.stringify(f.expected)}, found ${JSON.stringify(f.actual)}`,
    );
  }
  if (report.check.failed > 20) lines.push(`  … and ${report.check.failed - 20} more rows`);
  return lines.join('\n');
}
