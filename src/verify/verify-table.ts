/**
 * The human-readable output of `verify`: a summary line, one row per variable, and a verdict.
 */
import type { VerifyReport } from './verify.js';

/**
 * Formats a report as a plain-text table.
 * @param report the verify result.
 * @returns lines ending with a newline, ready for stdout.
 */
export function formatVerifyTable(report: VerifyReport): string {
  const { timings, decisions } = report;
  const rerun = decisions.rerun_cells.length === 0 ? 'no cell re-run' : `re-ran history cells ${decisions.rerun_cells.join(', ')}`;
  const lines = [
    `notebook:  ${report.notebook}`,
    `plan:      ${report.plan}: ${decisions.stored} groups stored, ${decisions.recomputed} rebuilt, ${rerun}`,
    `timings:   run ${timings.run_s.toFixed(2)} s · checkpoint ${timings.checkpoint_s.toFixed(2)} s · restore ${timings.restore_s.toFixed(2)} s`,
    ...baselineLine(report),
    `stored:    ${formatBytes(report.bytes_stored)}`,
    '',
  ];
  const header = ['variable', 'type', 'status', 'restored by', 'detail'];
  const rows = report.variables.map((v) => [v.name, v.type, v.status, v.restored_by ?? '—', v.detail]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  lines.push(line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '');
  for (const warning of report.warnings) lines.push(`warning: ${warning}`);

  const count = (status: string) => report.variables.filter((v) => v.status === status);
  const summary = ['equal', 'uncomparable', 'differs', 'missing']
    .map((s) => [s, count(s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  if (report.ok) {
    lines.push(`OK: ${summary || 'no variables'}.`);
  } else {
    const bad = report.variables.filter((v) => v.status === 'differs' || v.status === 'missing').map((v) => v.name);
    lines.push(`FAILED: ${summary}. Not restored faithfully: ${bad.join(', ')}.`);
  }
  return `${lines.join('\n')}\n`;
}

/** Checkpoint + restore of this plan next to the two baselines, when they were measured. */
function baselineLine({ timings }: VerifyReport): string[] {
  const measured = [
    ['store-all', timings.dump_session_s],
    ['recompute-all', timings.rerun_all_s],
  ].filter((entry): entry is [string, number] => entry[1] !== null);
  if (measured.length === 0) return [];
  const migration = timings.checkpoint_s + timings.restore_s;
  return [`migration: this plan ${migration.toFixed(2)} s · ${measured.map(([name, s]) => `${name} ${s.toFixed(2)} s`).join(' · ')}`];
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]} (${bytes} bytes)`;
}
