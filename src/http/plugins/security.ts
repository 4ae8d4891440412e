import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

// helmet's defaults suit a JSON API; HSTS two years, as Mozilla's intermediate profile asks.
const HELMET_OPTIONS: HelmetOptions = { hsts: { maxAge: 63_072_000, includeSubDomains: true } }

/**
 * The headers helmet sets, computed once. They do not depend on the request (no CSP nonces), and
 * @fastify/helmet rebuilt helmet's middleware — parsing every CSP directive — on each request, two
 * async hooks deep: about 3 % of the daemon's CPU at full load (bench/full-stack-vs-echo.js).
 */
export function securityHeaders(options: HelmetOptions = HELMET_OPTIONS): Record<string, string> {
  const headers: Record<string, string> = {}
  const recorder = {
    setHeader(name: string, value: string | number) {
      headers[name.toLowerCase()] = String(value)
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()]
    },
  }
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err
  })
  return headers
}

/** Security headers and the request id echoed to the client, on every response. */
export const securityPlugin = fp(
  async (app: FastifyInstance) => {
    const headers = securityHeaders()
    app.addHook('onRequest', (request, reply, done) => {
      reply.headers(headers)
      reply.header('x-request-id', request.id)
      done()
    })
  },
  { name: 'helix-security', fastify: '5.x' },
)
