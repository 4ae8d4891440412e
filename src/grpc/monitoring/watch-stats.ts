import { status } from '@grpc/grpc-js'
import type { Principal } from '../../core/identity/principal.js'
import { CpuMeter } from '../../core/monitoring/process-stats.js'
import { UserError } from '../../shared/errors.js'
import { type GrpcContext, serverStream } from '../calls.js'
import { toServiceError } from '../status.js'
import * as wire from './messages.js'
import { recordCall } from './record.js'
import { MONITORING_SERVICE, type MonitoringSources } from './sources.js'

interface WatchRequest {
  interval_ms?: number
  max_snapshots?: number
  include_gpus?: boolean
}

/** Bounds of WatchStats' interval_ms: below 100 ms a snapshot costs more than it tells. */
export const WATCH_INTERVAL_MS = { min: 100, max: 60_000, default: 1000 } as const

function intervalOf(requested: number | undefined): number {
  if (!requested) return WATCH_INTERVAL_MS.default
  if (requested < WATCH_INTERVAL_MS.min || requested > WATCH_INTERVAL_MS.max) {
    throw new UserError(
      'INVALID_INPUT',
      `interval_ms must be ${WATCH_INTERVAL_MS.min} to ${WATCH_INTERVAL_MS.max}, got ${requested}.`,
      { hint: 'Leave it out (0) for one snapshot a second.' },
    )
  }
  return requested
}

/**
 * WatchStats: a snapshot (server, models, alerts, GPUs when asked) every interval until the client
 * cancels, max_snapshots is reached or the server drains; a drain sends a last snapshot (draining,
 * HelixDraining) and ends the stream with OK. Each stream
 * has its own CPU meter, so `cpu.percent` covers the interval before each snapshot. A client that
 * reads slower than the interval skips snapshots rather than queueing them.
 */
export function watchStats(sources: MonitoringSources, context: GrpcContext) {
  const path = `${MONITORING_SERVICE}/WatchStats`
  return serverStream<WatchRequest, unknown>(context, path, async (call, drained) => {
    const started = performance.now()
    let principal: Principal | undefined
    let code = status.OK
    try {
      principal = await context.auth.authorize(call, { scope: 'monitor' })
      const intervalMs = intervalOf(call.request.interval_ms)
      const maxSnapshots = call.request.max_snapshots ?? 0
      const includeGpus = call.request.include_gpus === true
      const cpu = new CpuMeter()

      let stopped = false
      let wake: (() => void) | undefined
      const stop = () => {
        stopped = true
        wake?.()
      }
      call.once('cancelled', stop)
      void drained.then(stop)
      /** Resolves after `ms`, at a stop, or (with `drainEvent`) once the client has read what is buffered. */
      const pause = (ms: number | undefined, drainEvent = false) =>
        new Promise<void>((resolve) => {
          const timer = ms === undefined ? undefined : setTimeout(done, ms)
          if (drainEvent) call.once('drain', done)
          wake = done
          function done() {
            clearTimeout(timer)
            if (drainEvent) call.off('drain', done)
            wake = undefined
            resolve()
          }
          if (stopped) done()
        })

      const snapshot = async (sequence: number) => {
        const at = new Date()
        const [server, models, alerts, gpus] = await Promise.all([
          sources.serverStats(cpu),
          sources.modelStats(),
          sources.alerts(),
          includeGpus ? sources.gpus.sample() : undefined,
        ])
        return {
          sequence,
          at: wire.rfc3339(at),
          server: wire.serverStats(server),
          models: models.map(wire.modelStats),
          alerts: alerts.map(wire.alert),
          ...(gpus ? { gpus: wire.gpuStats(gpus) } : {}),
        }
      }

      let sent = 0
      while (!stopped) {
        const began = Date.now()
        const message = await snapshot(sent + 1)
        if (stopped) break
        sent += 1
        const writable = call.write(message)
        if (maxSnapshots > 0 && sent >= maxSnapshots) break
        if (!writable) await pause(undefined, true)
        await pause(Math.max(0, began + intervalMs - Date.now()))
      }
      // A drain gets one last snapshot that says so (draining, HelixDraining) before the stream ends.
      if (context.streams.isDraining && !call.cancelled && (maxSnapshots === 0 || sent < maxSnapshots)) {
        call.write(await snapshot(sent + 1))
      }
      call.off('cancelled', stop)
      if (call.cancelled) code = status.CANCELLED
    } catch (err) {
      code = toServiceError(err).code
      throw err
    } finally {
      recordCall(context.auth, call, principal, path, code, started)
    }
  })
}
