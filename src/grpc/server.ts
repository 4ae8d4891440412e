import type { Http2Server, IncomingHttpHeaders, ServerHttp2Session } from 'node:http2'
import {
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js'
import { ReflectionService } from '@grpc/reflection'
import type { Identity } from '../core/identity/identity.js'
import type { ModelService } from '../core/infer/types.js'
import type { CoreLogger } from '../core/logger.js'
import type { HelixMetrics } from '../core/metrics.js'
import type { DaemonSettings } from '../core/monitoring/config-summary.js'
import type { NvidiaSmiOptions } from '../core/monitoring/gpu-stats.js'
import type { HelixConfig } from '../shared/config.js'
import { Failure } from '../shared/errors.js'
import { INTERMEDIATE_CIPHERS, MIN_TLS_VERSION, TLS_SECURE_OPTIONS } from '../shared/tls-profile.js'
import { authService } from './auth/service.js'
import { type CallAuth, callAuth, openCallAuth } from './call-auth.js'
import { type GrpcContext, StreamRegistry } from './calls.js'
import { healthService } from './health.js'
import { inferenceService } from './inference/service.js'
import { monitoringService } from './monitoring/service.js'
import { loadProtos } from './protos.js'
import { tolerantDecoding } from './request-decoding.js'

export interface GrpcTls {
  cert: Buffer
  key: Buffer
  /** The helix CA; with mtls, client certificates must be signed by it. */
  ca?: Buffer
  mtls: boolean
}

export interface GrpcServerOptions {
  host: string
  /** 0 picks a free port. */
  port: number
  tls?: GrpcTls
  /** Largest message received or sent; beyond it the call fails with RESOURCE_EXHAUSTED. */
  maxMessageBytes: number
}

export interface GrpcServerDeps {
  service: ModelService
  /** The identity layer; without it (auth off) every caller may call every method. */
  identity?: Identity
  metrics?: HelixMetrics
  logger: CoreLogger
  /** helix.yaml as the daemon runs it (MonitoringService: certificate alert threshold, GetConfig). */
  config?: HelixConfig
  /** What `helix serve` resolved from helix.yaml, the environment and flags (MonitoringService.GetConfig). */
  settings?: DaemonSettings
  /** How nvidia-smi is run for MonitoringService's GPU methods (tests put a stand-in on PATH). */
  nvidiaSmi?: NvidiaSmiOptions
}

export interface GrpcServer {
  /** The port bound (the real one when 0 was asked). */
  port: number
  /** host:port as a gRPC client dials it (loopback for a wildcard host). */
  target: string
  tls: boolean
  /**
   * Stops taking calls, lets unary calls finish and streams end cleanly, bounded by `timeoutMs`,
   * after which the remaining calls are cancelled. Idempotent.
   */
  shutdown(timeoutMs: number): Promise<void>
}

/** TLS with the daemon's certificates and the intermediate profile; client certificates with mTLS. */
class DaemonCredentials extends ServerCredentials {
  constructor(tls: GrpcTls) {
    super(
      {
        minVersion: MIN_TLS_VERSION,
        ciphers: INTERMEDIATE_CIPHERS,
        honorCipherOrder: false,
        secureOptions: TLS_SECURE_OPTIONS,
        requestCert: tls.mtls,
        rejectUnauthorized: tls.mtls,
      },
      { cert: tls.cert, key: tls.key, ...(tls.mtls && tls.ca ? { ca: tls.ca } : {}) },
    )
  }

  _equals(other: ServerCredentials): boolean {
    return other === this
  }
}

function serviceDefinition(path: string): ServiceDefinition {
  const { grpc } = loadProtos()
  let node: unknown = grpc
  for (const part of path.split('.')) node = (node as Record<string, unknown>)[part]
  // Requests that do not decode reach the handlers, which answer INVALID_ARGUMENT (request-decoding.ts).
  return tolerantDecoding((node as { service: ServiceDefinition }).service)
}

/**
 * HTTP/2 receive windows the daemon offers each client connection. Node's default is 65,535 bytes
 * for the connection and for each stream, and @grpc/grpc-js has no server option for either: a
 * 110 KB tensor then cannot arrive before the daemon's event loop has sent a WINDOW_UPDATE, and
 * every call on one connection shares those 64 KB. With these windows a client sends whole requests
 * at once, as over REST's TCP connections.
 */
export const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024
export const STREAM_WINDOW_BYTES = 4 * 1024 * 1024

function widenWindows(session: ServerHttp2Session): void {
  const apply = () => {
    if (session.destroyed) return
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES)
    session.settings({ initialWindowSize: STREAM_WINDOW_BYTES })
  }
  if (session.connecting) session.once('connect', apply)
  else apply()
}

/** gRPC's TimeoutValue: at most 8 digits, then the unit (the HTTP/2 protocol spec's grpc-timeout). */
const GRPC_TIMEOUT = /^\d{1,8}[HMSmun]$/

/**
 * grpc-js answers a grpc-timeout header it cannot parse with INTERNAL, a server error for a client's
 * malformed header; without it the call is served as one without a deadline.
 */
function dropMalformedTimeout(headers: IncomingHttpHeaders): void {
  const timeout = headers['grpc-timeout']
  if (timeout !== undefined && !GRPC_TIMEOUT.test(String(timeout))) delete headers['grpc-timeout']
}

/**
 * grpc-js keeps its node:http2 servers in a private map; the windows are set on each session they
 * accept. Should a later grpc-js change that map, the daemon still serves, with Node's windows.
 */
function onEverySession(server: Server, logger: CoreLogger): void {
  const servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers
  if (!(servers instanceof Map)) {
    logger.warn(
      {},
      'gRPC: cannot reach the HTTP/2 servers of @grpc/grpc-js; HTTP/2 receive windows stay at 64 KB',
    )
    return
  }
  for (const http2Server of servers.keys()) {
    // Before grpc-js's own handler, which reads the same headers object.
    http2Server.prependListener('stream', (_stream, headers) => dropMalformedTimeout(headers))
    http2Server.on('session', (session: ServerHttp2Session) => {
      try {
        widenWindows(session)
      } catch (err) {
        logger.warn({ err }, 'gRPC: could not widen an HTTP/2 receive window')
      }
    })
  }
}

function dialHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1'
  return host.includes(':') ? `[${host}]` : host
}

/**
 * The gRPC face of the daemon: inference.GRPCInferenceService, grpc.health.v1.Health and server
 * reflection on the same model service, identity layer and metrics as the REST face.
 */
export async function startGrpcServer(options: GrpcServerOptions, deps: GrpcServerDeps): Promise<GrpcServer> {
  const auth: CallAuth = deps.identity ? callAuth(deps.identity) : openCallAuth
  const streams = new StreamRegistry()
  const context: GrpcContext = {
    auth,
    logger: deps.logger,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    streams,
  }
  const server = new Server({
    'grpc.max_receive_message_length': options.maxMessageBytes,
    'grpc.max_send_message_length': options.maxMessageBytes,
    // Channelz (grpc-js's own per-call and per-socket statistics) has no reader here: helix exports
    // its metrics to Prometheus. Off, calls skip its bookkeeping.
    'grpc.enable_channelz': 0,
  })
  const add = (name: string, implementation: UntypedServiceImplementation) => {
    const definition = serviceDefinition(name)
    if (Object.keys(definition).length > 0) server.addService(definition, implementation)
  }
  add('inference.GRPCInferenceService', inferenceService(deps.service, context))
  add('grpc.health.v1.Health', healthService(deps.service, context))
  add('helix.monitoring.v1.MonitoringService', monitoringService(deps, context))
  // Accounts need the identity layer: with auth off the service is absent (UNIMPLEMENTED), as the
  // REST /auth routes are.
  if (deps.identity) add('helix.auth.v1.AuthService', authService(deps.identity, context))
  // Reflection's own definitions decode as tolerantly: an undecodable message gets its error_response.
  new ReflectionService(loadProtos().definition).addToServer({
    addService: (definition, implementation) =>
      server.addService(tolerantDecoding(definition), implementation),
  })

  const credentials = options.tls ? new DaemonCredentials(options.tls) : ServerCredentials.createInsecure()
  const address = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, credentials, (err, bound) => (err ? reject(err) : resolve(bound)))
  }).catch((err: Error) => {
    throw new Failure('INTERNAL', `Cannot listen for gRPC on ${address}: ${err.message}.`, {
      hint: 'Pick another port with --grpc-port (server.grpc.port in helix.yaml), or turn gRPC off with --no-grpc.',
      cause: err,
    })
  })

  onEverySession(server, deps.logger)

  let closing: Promise<void> | undefined
  return {
    port,
    target: `${dialHost(options.host)}:${port}`,
    tls: options.tls !== undefined,
    shutdown(timeoutMs) {
      closing ??= (async () => {
        const graceful = new Promise<void>((resolve) => {
          // No new calls from here; open streams answer what they have and end (StreamRegistry).
          server.tryShutdown(() => resolve())
          void streams.drain()
        })
        let timer: NodeJS.Timeout | undefined
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs)
        })
        const outcome = await Promise.race([graceful.then(() => 'done' as const), timedOut])
        clearTimeout(timer)
        if (outcome === 'timeout') {
          deps.logger.warn({ timeoutMs }, 'gRPC drain timeout reached: cancelling the remaining calls')
          server.forceShutdown()
        }
      })()
      return closing
    },
  }
}
