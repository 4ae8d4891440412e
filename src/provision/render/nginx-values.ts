import { join } from 'node:path'
import type { HelixConfig } from '../../shared/config.js'
import { UserError } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'
import { renderTemplate } from '../../shared/templates.js'
import { CERT_FILES, certFileName } from '../../state/certs/cert-files.js'
import { daemonGrpcPort, grpcUpstreams } from './grpc-upstreams.js'
import { checkAllowSource, checkServerName, checkUpstream } from './render-inputs.js'
import type { RenderedFile } from './rendered-file.js'

/**
 * How a `server` turns HTTP/2 on: nginx 1.25.1 replaced `listen … http2` with `http2 on;`, and
 * warns about the old form; older nginx (Debian 12 ships 1.22) knows only the old one.
 */
export type Http2Syntax = 'listen' | 'directive'

/** The gRPC `server` of nginx.conf: HTTP/2 over TLS in front of the daemons' gRPC face. */
export interface NginxGrpcValues {
  port: number
  http2: Http2Syntax
  upstreams: string[]
  /** grpcs when the daemons serve TLS (server.tls / server.mtls), as for the REST upstream. */
  scheme: 'grpc' | 'grpcs'
  /** client_max_body_size of a unary call: one message of server.grpc.max_message_bytes and its 5-byte prefix. */
  maxBodyBytes: number
}

/** Everything templates/nginx/nginx.conf.eta needs. */
export interface NginxValues {
  /** The -p prefix the file is meant for; relative pid, log and temp paths resolve against it. */
  prefix: string
  /** Worker user, only where the master is known to run as root (the container). */
  user?: string
  errorLog: string
  accessLog: string
  serverName: string
  httpPort: number
  httpsPort: number
  /** ":port" appended to redirects when HTTPS is not on 443. */
  httpsPortSuffix: string
  ipv6: boolean
  upstreams: string[]
  upstreamScheme: 'http' | 'https'
  /** Present when the daemon itself serves TLS (server.tls / server.mtls). */
  upstreamTls?: { ca: string; name: string; clientCertificate?: string; clientCertificateKey?: string }
  tls: { certificate: string; certificateKey: string; clientCa?: string }
  metricsAllow: string[]
  ratePerIp: number
  ratePerKey: number
  burstPerIp: number
  burstPerKey: number
  maxBody: string
  /** Absent when the daemons serve no gRPC (server.grpc.enabled is false). */
  grpc?: NginxGrpcValues
}

/** Where the files nginx reads live, and how it is run: on this host or in the compose container. */
export interface NginxPlacement {
  prefix: string
  certsDir: string
  /** The TLS key when it is not certsDir/server.key (a compose secret). */
  serverKey?: string
  upstreams: string[]
  httpPort: number
  httpsPort: number
  /** The daemons' gRPC addresses, and the port nginx takes gRPC calls on. */
  grpcUpstreams: string[]
  grpcPort: number
  http2: Http2Syntax
  logs: { error: string; access: string }
  user?: string
}

/** Every gRPC message travels behind a 1-byte compressed flag and a 4-byte length (gRPC over HTTP/2). */
const GRPC_MESSAGE_PREFIX_BYTES = 5

export function hostPlacement(home: HelixHome, config: HelixConfig): NginxPlacement {
  return {
    prefix: home.nginxDir,
    certsDir: home.certsDir,
    upstreams: config.nginx.upstreams,
    httpPort: config.nginx.http_port,
    httpsPort: config.nginx.https_port,
    grpcUpstreams: config.server.grpc.enabled ? grpcUpstreams(config) : [],
    grpcPort: config.nginx.grpc_port,
    // The form every nginx with grpc_pass (1.13.10+) reads; newer ones only warn about it.
    http2: 'listen',
    logs: { error: 'error.log', access: 'access.log' },
  }
}

export function nginxValues(config: HelixConfig, placement: NginxPlacement): NginxValues {
  const { certsDir } = placement
  if (
    placement.grpcUpstreams.length > 0 &&
    [placement.httpPort, placement.httpsPort].includes(placement.grpcPort)
  ) {
    throw new UserError(
      'CONFIG_INVALID',
      `nginx.grpc_port ${placement.grpcPort} is also nginx's HTTP or HTTPS port.`,
      { hint: 'Give gRPC its own port with nginx.grpc_port in helix.yaml (8444 by default).' },
    )
  }
  const upstreams = placement.upstreams.map(checkUpstream)
  const daemonTls = config.server.tls || config.server.mtls
  return {
    prefix: placement.prefix,
    user: placement.user,
    errorLog: placement.logs.error,
    accessLog: placement.logs.access,
    serverName: checkServerName(config.domain),
    httpPort: placement.httpPort,
    httpsPort: placement.httpsPort,
    httpsPortSuffix: placement.httpsPort === 443 ? '' : `:${placement.httpsPort}`,
    ipv6: config.nginx.ipv6,
    upstreams,
    upstreamScheme: daemonTls ? 'https' : 'http',
    upstreamTls: daemonTls
      ? {
          ca: join(certsDir, certFileName(CERT_FILES.caCert)),
          name: checkServerName(config.domain),
          ...(config.server.mtls
            ? {
                clientCertificate: join(certsDir, certFileName(CERT_FILES.clientCert)),
                clientCertificateKey: join(certsDir, certFileName(CERT_FILES.clientKey)),
              }
            : {}),
        }
      : undefined,
    tls: {
      certificate: join(certsDir, certFileName(CERT_FILES.serverCert)),
      certificateKey: placement.serverKey ?? join(certsDir, certFileName(CERT_FILES.serverKey)),
      clientCa: config.nginx.mtls ? join(certsDir, certFileName(CERT_FILES.caCert)) : undefined,
    },
    metricsAllow: config.nginx.metrics_allow.map(checkAllowSource),
    ratePerIp: config.nginx.rate_per_ip,
    ratePerKey: config.nginx.rate_per_key,
    // One second's worth of requests may arrive at once before nginx answers 429.
    burstPerIp: config.nginx.rate_per_ip,
    burstPerKey: config.nginx.rate_per_key,
    maxBody: config.nginx.max_body,
    ...(daemonGrpcPort(config) !== undefined && placement.grpcUpstreams.length > 0
      ? {
          grpc: {
            port: placement.grpcPort,
            http2: placement.http2,
            upstreams: placement.grpcUpstreams.map(checkUpstream),
            scheme: daemonTls ? 'grpcs' : 'grpc',
            maxBodyBytes: config.server.grpc.max_message_bytes + GRPC_MESSAGE_PREFIX_BYTES,
          },
        }
      : {}),
  }
}

/** nginx/nginx.conf for running nginx on this host in front of config.nginx.upstreams. */
export function planNginx(home: HelixHome, config: HelixConfig): RenderedFile[] {
  const values = nginxValues(config, hostPlacement(home, config))
  return [{ path: join(home.nginxDir, 'nginx.conf'), data: renderTemplate('nginx/nginx.conf.eta', values) }]
}
