import type { HelixConfig } from '../../shared/config.js'
import { UserError } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'
import { readDaemonRecord } from '../../state/daemon-record.js'

/** Where a gRPC target dials and whether it speaks TLS. */
export interface GrpcAddress {
  /** host:port as the channel dials it (IPv6 in brackets). */
  target: string
  tls: boolean
  /** grpc://host:port or grpcs://host:port, as reports show it. */
  url: string
}

const SCHEMES: Record<string, { tls: boolean; port: number }> = {
  'grpc:': { tls: false, port: 80 },
  'http:': { tls: false, port: 80 },
  'grpcs:': { tls: true, port: 443 },
  'https:': { tls: true, port: 443 },
}

const HINT = 'Pass --url with the gRPC address, e.g. --url 127.0.0.1:8081 (grpcs://127.0.0.1:8081 for TLS).'

/**
 * The gRPC --url: host:port (plaintext), grpc://host:port, or grpcs://host:port for TLS (http:// and
 * https:// read the same way). A scheme without a port means 80 or 443; a path is refused, since
 * gRPC calls name their own paths.
 */
export function parseGrpcUrl(url: string): GrpcAddress {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `grpc://${url}`
  let parsed: URL
  try {
    parsed = new URL(withScheme)
  } catch {
    throw new UserError('BENCH_BAD_URL', `--url is not a gRPC address: "${url}"`, { hint: HINT })
  }
  const scheme = SCHEMES[parsed.protocol]
  if (!scheme || !parsed.hostname) {
    throw new UserError(
      'BENCH_BAD_URL',
      `--url must be host:port, grpc://host:port or grpcs://host:port for a gRPC target (got "${url}")`,
      { hint: HINT },
    )
  }
  if ((parsed.pathname !== '/' && parsed.pathname !== '') || parsed.search) {
    throw new UserError('BENCH_BAD_URL', `A gRPC --url has no path (got "${url}")`, { hint: HINT })
  }
  if (!parsed.port && withScheme !== url) {
    throw new UserError('BENCH_BAD_URL', `--url ${url} has no port`, { hint: HINT })
  }
  const target = `${parsed.hostname}:${parsed.port || scheme.port}`
  return { target, tls: scheme.tls, url: `${scheme.tls ? 'grpcs' : 'grpc'}://${target}` }
}

/**
 * The gRPC address of the daemon on this helix directory when --url is not given: its gRPC face
 * from data/daemon.json while it runs, else server.grpc of helix.yaml (REST port + 1 unless set).
 */
export async function daemonGrpcUrl(home: HelixHome, config: HelixConfig): Promise<string> {
  const record = await readDaemonRecord(home)
  if (record) {
    if (!record.grpc) {
      throw new UserError(
        'BENCH_URL_REQUIRED',
        `The daemon running on ${home.root} (pid ${record.pid}) serves no gRPC`,
        {
          hint: 'Restart it without --no-grpc (server.grpc.enabled in helix.yaml), or pass --url host:port.',
        },
      )
    }
    return `${record.grpc.tls ? 'grpcs' : 'grpc'}://${record.grpc.target}`
  }
  const { server } = config
  const port = server.grpc.port ?? (server.port === 0 ? 0 : server.port + 1)
  if (!server.grpc.enabled || port === 0) {
    throw new UserError(
      'BENCH_URL_REQUIRED',
      `No running daemon on ${home.root}, and helix.yaml names no gRPC port`,
      {
        hint: 'Start `helix serve`, or pass --url host:port of the gRPC face.',
      },
    )
  }
  const host = server.host === '0.0.0.0' || server.host === '::' ? '127.0.0.1' : server.host
  return `${server.tls || server.mtls ? 'grpcs' : 'grpc'}://${host.includes(':') ? `[${host}]` : host}:${port}`
}
