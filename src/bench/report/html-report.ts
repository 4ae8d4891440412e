import { renderTemplate } from '../../shared/templates.js'
import type { BenchResult } from '../types.js'

/**
 * One self-contained HTML page (inline CSS, inline JS drawing SVG charts, the result embedded as JSON)
 * that opens from disk with no network access.
 */
export function renderHtmlReport(result: BenchResult): string {
  // Inside <script>, "</script>" or "<!--" in a string would end the block: escape every '<'.
  const dataJson = JSON.stringify(result)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029')
  return renderTemplate('bench/report.html.eta', { dataJson })
}
