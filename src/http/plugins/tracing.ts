import { type Context, type Span, SpanStatusCode } from '@opentelemetry/api'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import {
  callerContext,
  parseTraceparent,
  startChildSpan,
  startRequestSpan,
  traceparentOf,
  tracingEnabled,
} from '../../core/tracing.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The request span's context while tracing is on (helix.yaml tracing.enabled); the inference core hangs its spans under it. */
    traceContext?: Context
  }
}

interface OpenSpans {
  request: Span
  auth?: Span
}

/**
 * One server span per request (W3C traceparent honoured, and returned in a traceparent header) with
 * an auth child span, and trace_id/span_id on the request's log lines. With tracing off, a caller's
 * traceparent still puts its trace id on the log lines; nothing else is done. Whether tracing is on is
 * read when the app is built (serve starts tracing first): with it off, only the onRequest hook runs.
 */
export const tracingPlugin = fp(
  async (app: FastifyInstance) => {
    const open = new WeakMap<object, OpenSpans>()
    const traced = tracingEnabled()
    app.decorateRequest('traceContext', undefined)
    // Callback hooks: an async hook would cost a promise per request even with tracing off.
    app.addHook('onRequest', (request, reply, done) => {
      const header = request.headers.traceparent
      if (!traced || !tracingEnabled()) {
        const caller = header === undefined ? undefined : parseTraceparent(header)
        if (caller) request.log = request.log.child({ trace_id: caller.traceId, span_id: caller.spanId })
        done()
        return
      }
      // Span names stay few: the route pattern, or the method alone when no route matched.
      const route = request.routeOptions.url
      const name = route ? `${request.method} ${route}` : request.method
      const { span, context } = startRequestSpan(name, callerContext(header), {
        'http.request.method': request.method,
        ...(route ? { 'http.route': route } : {}),
        'url.path': request.url.split('?')[0],
      })
      request.traceContext = context
      open.set(request, { request: span, auth: startChildSpan('auth', context) })
      reply.header('traceparent', traceparentOf(span))
      const ids = span.spanContext()
      request.log = request.log.child({ trace_id: ids.traceId, span_id: ids.spanId })
      done()
    })
    if (!traced) return
    // Runs after every onRequest hook (authentication among them).
    app.addHook('preParsing', (request, _reply, payload, done) => {
      const spans = open.get(request)
      if (spans?.auth) {
        spans.auth.end()
        spans.auth = undefined
      }
      done(null, payload)
    })
    app.addHook('onResponse', (request, reply, done) => {
      const spans = open.get(request)
      if (spans) {
        spans.auth?.end()
        spans.request.setAttribute('http.response.status_code', reply.statusCode)
        if (reply.statusCode >= 500) spans.request.setStatus({ code: SpanStatusCode.ERROR })
        spans.request.end()
        open.delete(request)
      }
      done()
    })
  },
  { name: 'helix-tracing', fastify: '5.x' },
)
