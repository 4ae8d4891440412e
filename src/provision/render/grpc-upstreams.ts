import type { HelixConfig } from '../../shared/config.js'
import { checkUpstream } from './render-inputs.js'

/**
 * The port the daemon's gRPC face listens on as helix.yaml describes it: server.grpc.port, else the
 * REST port + 1 (the rule `helix serve` applies); undefined when gRPC is off (server.grpc.enabled).
 * 0 (any free port) stays 0: such a daemon cannot be named in a generated file.
 */
export function daemonGrpcPort(config: HelixConfig): number | undefined {
  const { grpc, port } = config.server
  if (!grpc.enabled) return undefined
  if (grpc.port !== undefined) return grpc.port
  return port === 0 ? 0 : port + 1
}

/** `host:port` with another port, for IPv4, names and `[v6]:port` alike. */
function withPort(address: string, port: number): string {
  return `${address.slice(0, address.lastIndexOf(':'))}:${port}`
}

/**
 * The daemons' gRPC addresses nginx balances over: nginx.grpc_upstreams when set, else each of
 * nginx.upstreams with its gRPC port (server.grpc.port when set, else that upstream's port + 1).
 */
export function grpcUpstreams(config: HelixConfig): string[] {
  if (config.nginx.grpc_upstreams?.length) return config.nginx.grpc_upstreams.map(checkUpstream)
  const configured = config.server.grpc.port
  return config.nginx.upstreams.map((upstream) => {
    const rest = checkUpstream(upstream)
    const port = configured ? configured : Number(rest.slice(rest.lastIndexOf(':') + 1)) + 1
    return checkUpstream(withPort(rest, port))
  })
}
