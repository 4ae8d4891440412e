import type { StatsSnapshot, WireHistogram, WireModelStats } from '../../grpc/monitoring-client.js'
import { renderTable } from './table.js'

function duration(seconds: number): string {
  const s = Math.floor(seconds)
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  if (d > 0) return `${d}d ${h}h`
  if (h > 0) return `${h}h ${m}m`
  return m > 0 ? `${m}m ${s % 60}s` : `${s}s`
}

const MIB = 1024 * 1024
const mib = (bytes: string | number | undefined) => `${Math.round(Number(bytes ?? 0) / MIB)} MiB`

/** Milliseconds with a precision that suits the value ("0.42 ms", "12.3 ms", "1530 ms"). */
function ms(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '-'
  const value = seconds * 1000
  return `${value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)} ms`
}

/** A per-second rate from two counter readings `elapsed` seconds apart; "-" without a previous one. */
function rate(now: string | number, before: string | number | undefined, elapsed: number): string {
  if (before === undefined || elapsed <= 0) return '-'
  const perSecond = Math.max(0, Number(now) - Number(before)) / elapsed
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1)
}

/** The percentile of the histogram that has the most observations among a model's versions. */
function busiest(
  model: WireModelStats,
  pick: 'queue_seconds' | 'compute_seconds',
): WireHistogram | undefined {
  let best: WireHistogram | undefined
  for (const v of model.versions) {
    const h = v[pick]
    if (h && Number(h.count) > Number(best?.count ?? -1)) best = h
  }
  return best && Number(best.count) > 0 ? best : undefined
}

/**
 * One frame of `helix top`: the server line, traffic by face, one row per model version, GPUs and the
 * firing alerts. Rates come from the previous snapshot of the same stream (none for the first frame).
 */
export function renderTop(snapshot: StatsSnapshot, previous?: StatsSnapshot): string {
  const elapsed = previous ? (Date.parse(snapshot.at) - Date.parse(previous.at)) / 1000 : 0
  const { server } = snapshot
  const lines: string[] = []
  const state = server.draining ? 'DRAINING' : server.ready ? 'ready' : 'NOT READY'
  const cpu = server.cpu
    ? `cpu ${server.cpu.percent.toFixed(0)}% (${server.cpu.cores} cores)  load ${server.cpu.load_average.map((l) => l.toFixed(2)).join(' ')}`
    : ''
  lines.push(
    `helix ${server.version}  pid ${server.pid}  up ${duration(server.uptime_seconds)}  ${state}  ${cpu}  rss ${mib(server.memory?.rss_bytes)}  heap ${mib(server.memory?.heap_used_bytes)}  loop p99 ${server.event_loop ? `${server.event_loop.p99_ms.toFixed(1)} ms` : '-'}`,
  )
  const before = (protocol: string) => previous?.server.requests.find((r) => r.protocol === protocol)
  const faces = server.requests.map(
    (r) =>
      `${r.protocol} ${r.requests} (${rate(r.requests, before(r.protocol)?.requests, elapsed)}/s, ${r.failures} failed, ${r.server_errors} server errors)`,
  )
  lines.push(
    `requests   ${faces.length > 0 ? faces.join('  ') : 'none yet'}   queued ${server.queued_requests}  gRPC streams ${server.open_streams}  models ready ${server.models_ready}/${server.model_versions}`,
  )
  lines.push('')

  const rows: string[][] = []
  for (const model of [...snapshot.models].sort((a, b) => a.name.localeCompare(b.name))) {
    const was = previous?.models.find((m) => m.name === model.name)
    const queue = busiest(model, 'queue_seconds')
    const compute = busiest(model, 'compute_seconds')
    const states = model.versions
      .filter((v) => v.version)
      .map((v) => `${v.version}:${v.state || 'gone'}`)
      .join(' ')
    rows.push([
      model.name,
      states || '-',
      rate(model.requests, was?.requests, elapsed),
      model.successes,
      model.failures,
      ms(queue?.p95),
      ms(compute?.p95),
      model.batch_size && Number(model.batch_size.count) > 0 ? model.batch_size.mean.toFixed(1) : '-',
    ])
  }
  lines.push(
    rows.length > 0
      ? renderTable(['MODEL', 'VERSIONS', 'REQ/S', 'OK', 'FAILED', 'QUEUE p95', 'COMPUTE p95', 'BATCH'], rows)
      : 'No models in the repository.',
  )

  if (snapshot.gpus) {
    lines.push('')
    if (snapshot.gpus.gpus.length === 0)
      lines.push(`GPUs: none (${snapshot.gpus.reason || 'nvidia-smi found none'})`)
    else {
      const num = (v: number | undefined, unit: string) => (v === undefined ? '-' : `${v.toFixed(0)}${unit}`)
      lines.push(
        renderTable(
          ['GPU', 'NAME', 'UTIL', 'MEMORY', 'TEMP', 'POWER'],
          snapshot.gpus.gpus.map((g) => [
            String(g.index),
            g.name,
            num(g.utilization_gpu_percent, '%'),
            `${g.memory_used_mib}/${g.memory_total_mib} MiB`,
            num(g.temperature_celsius, ' C'),
            num(g.power_draw_watts, ' W'),
          ]),
        ),
      )
    }
  }

  lines.push('')
  if (snapshot.alerts.length === 0) lines.push('alerts     none firing')
  else {
    for (const alert of snapshot.alerts)
      lines.push(`ALERT ${alert.severity.padEnd(8)} ${alert.name}  ${alert.summary}`)
  }
  lines.push(`(${snapshot.at}, snapshot ${snapshot.sequence})`)
  return lines.join('\n')
}
