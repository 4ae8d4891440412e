import type { FileReport } from '../../shared/file-report.js'

/** Human summary of a provisioning step: what was created and what was kept. */
export function renderFileReport(title: string, report: FileReport): string {
  const lines = [title]
  for (const path of report.created) lines.push(`  created  ${path}`)
  for (const path of report.kept) lines.push(`  kept     ${path}`)
  if (report.kept.length > 0 && report.created.length === 0)
    lines.push('Nothing to do: everything already exists (use --force to regenerate).')
  return lines.join('\n')
}

/** A plain fixed-width table for list commands. */
export function renderTable(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))]
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  return cells
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}
