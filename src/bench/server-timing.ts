/**
 * Reads `Server-Timing: queue;dur=1.2, compute;dur=3.4` (W3C Server Timing) into durations by
 * metric name, in milliseconds. Unknown metrics are kept; malformed entries are skipped.
 */
export function parseServerTiming(header: string | string[] | undefined): Record<string, number> {
  const out: Record<string, number> = {}
  if (header === undefined) return out
  const text = Array.isArray(header) ? header.join(',') : header
  for (const entry of text.split(',')) {
    const [name, ...params] = entry.split(';').map((p) => p.trim())
    if (!name) continue
    for (const param of params) {
      const match = /^dur\s*=\s*"?(-?\d+(?:\.\d+)?)"?$/i.exec(param)
      if (match) out[name] = Number(match[1])
    }
  }
  return out
}
