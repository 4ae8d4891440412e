import { startGrpcServer } from '../grpc/server.js'
import { startMetricsListener } from '../http/metrics-listener.js'
import type { ServeFlags } from '../http/serve-config.js'
import { type DaemonFace, type ServeOptions, type ServeResult, serve } from '../http/server.js'
import type { HelixHome } from '../shared/home.js'

/** The gRPC face on its own port, with the REST face's certificates, identity layer and metrics. */
export const grpcFace: DaemonFace = async ({ config, service, identity, metrics, logger }) => {
  if (!config.grpc) return undefined
  const server = await startGrpcServer(
    {
      host: config.host,
      port: config.grpc.port,
      ...(config.tls ? { tls: config.tls } : {}),
      maxMessageBytes: config.grpc.maxMessageBytes,
    },
    {
      service,
      metrics,
      logger: logger.child({ component: 'grpc' }),
      ...(identity ? { identity } : {}),
      config: config.helix,
      settings: {
        host: config.host,
        port: config.port,
        grpcPort: config.grpc.port,
        grpcMaxMessageBytes: config.grpc.maxMessageBytes,
        tls: config.tls !== undefined,
        mtls: config.tls?.mtls === true,
        bodyLimitBytes: config.bodyLimit,
        drainTimeoutMs: config.drainTimeoutMs,
        logLevel: config.logLevel,
        logFormat: config.logFormat,
        modelsDir: config.modelsDir,
      },
    },
  )
  logger.info({ target: server.target, tls: server.tls }, `gRPC listening on ${server.target}`)
  return {
    name: 'gRPC',
    address: server.target,
    record: { grpc: { target: server.target, port: server.port, tls: server.tls } },
    shutdown: (timeoutMs) => server.shutdown(timeoutMs),
  }
}

/** GET /metrics on 127.0.0.1:server.metrics_port without credentials, when that is set. */
export const metricsFace: DaemonFace = async ({ config, metrics, logger }) => {
  const port = config.helix.server.metrics_port
  if (port === undefined) return undefined
  const listener = await startMetricsListener(metrics.registry, port)
  logger.info({ url: listener.url }, `metrics listening on ${listener.url}`)
  return {
    name: 'metrics',
    address: listener.url,
    record: {},
    shutdown: () => listener.close(),
  }
}

/** `helix serve` and `helix up`: the REST face, the gRPC face and the loopback metrics port on one model service. */
export function serveDaemon(
  home: HelixHome,
  flags: ServeFlags,
  options: ServeOptions = {},
): Promise<ServeResult> {
  return serve(home, flags, { ...options, faces: [grpcFace, metricsFace, ...(options.faces ?? [])] })
}
