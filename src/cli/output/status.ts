import type { GrpcStatus, StatusReport } from '../../ops/status.js'
import { renderTable } from './table.js'

function duration(seconds: number): string {
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${seconds % 60}s` : `${seconds}s`
}

/** The gRPC line: the face's address and its grpc.health.v1 answer. */
function grpcLine(grpc: GrpcStatus, daemonReachable: boolean): string {
  const where = `grpc       ${grpc.target}${grpc.tls ? ' (tls)' : ''}`
  if (grpc.status === 'SERVING') return `${where}  serving`
  if (grpc.status) return `${where}  ${grpc.status.replace('_', ' ')} (grpc.health.v1)`
  return daemonReachable
    ? `${where}  NOT ANSWERING (${grpc.error ?? 'no answer'})`
    : `${where}  not running (${grpc.error ?? 'no answer'})`
}

/** The human view of `helix status`. */
export function renderStatus(report: StatusReport): string {
  const { daemon, database, jwt, gpus } = report
  const lines: string[] = []
  lines.push(
    daemon.reachable
      ? `daemon     ${daemon.url}  ${daemon.ready ? 'ready' : `NOT READY${daemon.notReadyReason ? ` (${daemon.notReadyReason})` : ''}`}  version ${daemon.version ?? '?'}${daemon.uptimeSeconds === undefined ? '' : `  up ${duration(daemon.uptimeSeconds)}`}${daemon.pid === undefined ? '' : `  pid ${daemon.pid}`}${daemon.error ? `  (${daemon.error})` : ''}`
      : daemon.pid === undefined
        ? `daemon     ${daemon.url}  not running (${daemon.error ?? 'unreachable'}); start it with \`helix serve\` or \`helix up\``
        : `daemon     ${daemon.url}  NOT ANSWERING (${daemon.error ?? 'unreachable'}) although pid ${daemon.pid} runs; see its log, or stop it and start again`,
  )
  if (report.grpc) lines.push(grpcLine(report.grpc, daemon.reachable))
  const migrations = database.migrations
  const migrationText = migrations
    ? `${migrations.applied.length} applied, ${migrations.pending.length} pending${migrations.drift.length ? `, ${migrations.drift.length} DRIFTED` : ''}`
    : 'migrations unknown'
  lines.push(
    `database   ${database.mode}  ${database.reachable ? 'reachable' : database.running ? 'running, not reachable' : 'DOWN'}${database.port ? `  port ${database.port}` : ''}  ${migrationText}${database.error ? `  (${database.error})` : ''}`,
  )
  for (const cert of report.certificates) {
    lines.push(
      `cert       ${cert.file.padEnd(18)} ${cert.daysLeft} days left${cert.warning ? `  ${cert.warning}` : ''}`,
    )
  }
  lines.push(
    jwt.kid
      ? `jwt key    ${jwt.alg} ${jwt.kid.slice(0, 12)}…  ${jwt.ageDays} day(s) old${jwt.overdue ? '  ROTATE (helix keys rotate)' : ''}`
      : `jwt key    ${jwt.error}`,
  )
  lines.push(
    gpus.gpus.length
      ? `gpus       ${gpus.gpus.map((g) => `${g.index}: ${g.name} ${g.memoryFreeMiB}/${g.memoryTotalMiB} MiB free`).join('; ')}`
      : `gpus       none (${gpus.reason})`,
  )
  if (report.models.length) {
    lines.push(
      '',
      renderTable(
        ['MODEL', 'VERSION', 'STATE', 'PROVIDER', 'QUEUE', 'REASON'],
        report.models.map((m) => [
          m.name,
          m.version,
          m.state,
          m.executionProvider ?? '-',
          m.queueDepth ?? 0,
          m.reason ?? '',
        ]),
      ),
    )
  }
  return lines.join('\n')
}
