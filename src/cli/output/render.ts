import type { RenderReport } from '../../provision/render/render.js'

/** Human summary of `helix render <artifact>`. */
export function renderRenderReport(report: RenderReport, root: string): string {
  const lines = [`Rendered ${report.artifact} in ${root}`]
  for (const path of report.created) lines.push(`  created    ${path}`)
  for (const path of report.updated) lines.push(`  updated    ${path}`)
  for (const path of report.unchanged) lines.push(`  unchanged  ${path}`)
  if (report.created.length === 0 && report.updated.length === 0)
    lines.push('Everything was already up to date.')
  return lines.join('\n')
}
