import { startGrpcServer } from '../grpc/server.js'
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

/** `helix serve` and `helix up`: the REST face and the gRPC face on one model service. */
export function serveDaemon(
  home: HelixHome,
  flags: ServeFlags,
  options: ServeOptions = {},
): Promise<ServeResult> {
  return serve(home, flags, { ...options, faces: [grpcFace, ...(options.faces ?? [])] })
}
