import {
  type Context,
  DiagLogLevel,
  diag,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api'
import { UserError } from '../shared/errors.js'
import type { CoreLogger } from './logger.js'

/** helix.yaml `tracing`: OTLP/HTTP export of the daemon's spans. */
export interface TracingSettings {
  enabled: boolean
  /** OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces. */
  endpoint: string
  /** Share (0 to 1) of new traces sampled; a caller's traceparent decides for its own trace. */
  sampling_ratio: number
  service_name: string
  /** Extra HTTP headers sent with every export (e.g. an API key of the collector). */
  headers?: Record<string, string>
}

export interface RunningTracing {
  /** Flushes the spans still buffered and stops exporting. */
  shutdown(): Promise<void>
}

const TRACEPARENT = /^([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)

let on = false

/** Whether the daemon exports spans (helix.yaml tracing.enabled); when off no span is ever made. */
export function tracingEnabled(): boolean {
  return on
}

function tracer() {
  return trace.getTracer('helix')
}

/**
 * Registers the OpenTelemetry SDK: spans go in batches to the OTLP/HTTP endpoint as JSON, sampled
 * parent-based with the ratio for new traces. The SDK is loaded only when tracing is on.
 */
export async function startTracing(settings: TracingSettings, logger: CoreLogger): Promise<RunningTracing> {
  if (!settings.enabled) return { shutdown: async () => {} }
  // Not echoed: the URL may hold credentials.
  if (!URL.canParse(settings.endpoint))
    throw new UserError('CONFIG_INVALID', 'tracing.endpoint in helix.yaml is not a valid URL.', {
      hint: 'Give the OTLP/HTTP traces endpoint of a collector, e.g. http://127.0.0.1:4318/v1/traces.',
    })
  const [
    { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler },
    otlp,
    res,
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ])
  const exporter = new otlp.OTLPTraceExporter({
    url: settings.endpoint,
    ...(settings.headers ? { headers: settings.headers } : {}),
  })
  const provider = new BasicTracerProvider({
    resource: res.resourceFromAttributes({ 'service.name': settings.service_name }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampling_ratio) }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000 })],
  })
  trace.setGlobalTracerProvider(provider)
  // Failed exports (collector down) are warned about at most once a minute.
  let warnedAt = Number.NEGATIVE_INFINITY
  const warn = (message: string) => {
    if (performance.now() - warnedAt < 60_000) return
    warnedAt = performance.now()
    logger.warn({ err: message }, 'tracing: export to the collector failed')
  }
  diag.setLogger(
    { error: warn, warn, info: () => {}, debug: () => {}, verbose: () => {} },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  )
  on = true
  // Neither headers nor URL credentials: they may be a collector's secrets.
  const shown = new URL(settings.endpoint)
  logger.info(
    { endpoint: `${shown.origin}${shown.pathname}`, samplingRatio: settings.sampling_ratio },
    'tracing on (OTLP/HTTP)',
  )
  return {
    shutdown: async () => {
      on = false
      await provider
        .shutdown()
        .catch((err: Error) => logger.warn({ err: err.message }, 'tracing shutdown failed'))
      // Lets a later start in the same process register its own provider.
      trace.disable()
      diag.disable()
    },
  }
}

/** The trace and span ids of a W3C traceparent header, or undefined when it is malformed. */
export function parseTraceparent(
  header: unknown,
): { traceId: string; spanId: string; sampled: boolean } | undefined {
  if (typeof header !== 'string') return undefined
  const m = TRACEPARENT.exec(header.trim().toLowerCase())
  if (!m || m[1] === 'ff' || m[2] === ZERO_TRACE || m[3] === ZERO_SPAN) return undefined
  return { traceId: m[2], spanId: m[3], sampled: (Number.parseInt(m[4], 16) & 1) === 1 }
}

/** The context a caller's traceparent names (its span as the remote parent), else the root. */
export function callerContext(traceparent: unknown): Context {
  const parsed = parseTraceparent(traceparent)
  if (!parsed) return ROOT_CONTEXT
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: parsed.traceId,
    spanId: parsed.spanId,
    traceFlags: parsed.sampled ? 1 : 0,
    isRemote: true,
  })
}

/** The traceparent header naming a span (returned to the caller). */
export function traceparentOf(span: Span): string {
  const c = span.spanContext()
  return `00-${c.traceId}-${c.spanId}-0${c.traceFlags & 1}`
}

/** Starts a request's server span under the caller's context; returns it and the context holding it. */
export function startRequestSpan(
  name: string,
  parent: Context,
  attributes: Record<string, string | number>,
): { span: Span; context: Context } {
  const span = tracer().startSpan(name, { kind: SpanKind.SERVER, attributes }, parent)
  return { span, context: trace.setSpan(parent, span) }
}

/** A child span of a request's context (auth, queue, compute). */
export function startChildSpan(name: string, parent: Context, startTime?: number): Span {
  return tracer().startSpan(name, startTime !== undefined ? { startTime } : {}, parent)
}

/** Ends a span with an error status. */
export function endWithError(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) })
  span.end()
}

/** The request span of a context when it is being recorded (sampled), else undefined. */
export function recordingSpan(ctx: Context | undefined): Span | undefined {
  if (!ctx) return undefined
  const span = trace.getSpan(ctx)
  return span?.isRecording() ? span : undefined
}

/**
 * The span of one executed batch: a child of the first request it served, linking the span of every
 * request in it (a batch serves requests of several traces).
 */
export function startBatchSpan(
  model: string,
  requests: Context[],
  attributes: Record<string, string | number>,
): Span {
  const links: Link[] = requests.map((c) => ({ context: (trace.getSpan(c) as Span).spanContext() }))
  // The scheduler names itself "<model>' version '<version>" (the wording of its errors).
  const [name, version] = model.split("' version '")
  return tracer().startSpan(
    'batch',
    {
      links,
      attributes: {
        ...attributes,
        'helix.model': name,
        ...(version ? { 'helix.model_version': version } : {}),
      },
    },
    requests[0],
  )
}
