import { availableParallelism, loadavg } from 'node:os'
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks'

export interface ProcessMemory {
  rssBytes: number
  heapUsedBytes: number
  heapTotalBytes: number
  externalBytes: number
  arrayBuffersBytes: number
}

export interface ProcessCpu {
  /** CPU time used since the process started. */
  userSeconds: number
  systemSeconds: number
  /** Share of one core used since the previous reading of the same meter (100 = one core busy). */
  percent: number
  cores: number
  /** 1, 5 and 15 minute load averages of the host (zeros on Windows). */
  loadAverage: number[]
}

export interface EventLoopLag {
  /** How late timers ran, in milliseconds, over `windowSeconds`. */
  meanMs: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  windowSeconds: number
}

export function processMemory(): ProcessMemory {
  const m = process.memoryUsage()
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
  }
}

/** CPU use between two readings: each reader (a unary call, one watch stream) keeps its own meter. */
export class CpuMeter {
  private last: { at: number; usage: NodeJS.CpuUsage }

  constructor() {
    // The first reading covers the life of the process so far.
    this.last = { at: performance.now() - process.uptime() * 1000, usage: { user: 0, system: 0 } }
  }

  read(): ProcessCpu {
    const at = performance.now()
    const usage = process.cpuUsage()
    const cpuMicros = usage.user - this.last.usage.user + (usage.system - this.last.usage.system)
    const wallMs = at - this.last.at
    this.last = { at, usage }
    return {
      userSeconds: usage.user / 1e6,
      systemSeconds: usage.system / 1e6,
      percent: wallMs > 0 ? (cpuMicros / 1000 / wallMs) * 100 : 0,
      cores: availableParallelism(),
      loadAverage: loadavg(),
    }
  }
}

/** Timer resolution of the lag monitor; what it records beyond this is lag. */
const LAG_RESOLUTION_MS = 20
/** The lag figures cover at most about this long: older samples are dropped on the next reading. */
const LAG_WINDOW_MS = 60_000

/**
 * Event-loop lag from perf_hooks' monitorEventLoopDelay, one monitor per process (its timer does not
 * keep the process alive). The monitor records the interval between its timer's runs, so the
 * resolution is subtracted to leave the delay.
 */
class EventLoopMonitor {
  private readonly histogram: IntervalHistogram
  private since = performance.now()

  constructor() {
    this.histogram = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS })
    this.histogram.enable()
  }

  read(): EventLoopLag {
    const h = this.histogram
    const lag = (ns: number) => (h.count > 0 ? Math.max(0, ns / 1e6 - LAG_RESOLUTION_MS) : 0)
    const windowMs = performance.now() - this.since
    const reading = {
      meanMs: lag(h.mean),
      p50Ms: lag(h.percentile(50)),
      p99Ms: lag(h.percentile(99)),
      maxMs: lag(h.max),
      windowSeconds: windowMs / 1000,
    }
    if (windowMs >= LAG_WINDOW_MS) {
      h.reset()
      this.since = performance.now()
    }
    return reading
  }
}

let monitor: EventLoopMonitor | undefined

/** Event-loop lag of this process over the last minute or so (the monitor starts on the first call). */
export function eventLoopLag(): EventLoopLag {
  monitor ??= new EventLoopMonitor()
  return monitor.read()
}
