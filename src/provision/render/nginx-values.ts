import { join } from 'node:path'
import type { HelixConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'
import { renderTemplate } from '../../shared/templates.js'
import { CERT_FILES, certFileName } from '../../state/certs/cert-files.js'
import { checkAllowSource, checkServerName, checkUpstream } from './render-inputs.js'
import type { RenderedFile } from './rendered-file.js'

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
  logs: { error: string; access: string }
  user?: string
}

export function hostPlacement(home: HelixHome, config: HelixConfig): NginxPlacement {
  return {
    prefix: home.nginxDir,
    certsDir: home.certsDir,
    upstreams: config.nginx.upstreams,
    httpPort: config.nginx.http_port,
    httpsPort: config.nginx.https_port,
    logs: { error: 'error.log', access: 'access.log' },
  }
}

export function nginxValues(config: HelixConfig, placement: NginxPlacement): NginxValues {
  const { certsDir } = placement
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
  }
}

/** nginx/nginx.conf for running nginx on this host in front of config.nginx.upstreams. */
export function planNginx(home: HelixHome, config: HelixConfig): RenderedFile[] {
  const values = nginxValues(config, hostPlacement(home, config))
  return [{ path: join(home.nginxDir, 'nginx.conf'), data: renderTemplate('nginx/nginx.conf.eta', values) }]
}
