import { type ChannelCredentials, type Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js'
import { loadProtos } from './protos.js'
import { statusName } from './status.js'

export interface GrpcHealthOptions {
  /** Dial with TLS, trusting `ca` (the helix CA); `cert` and `key` are the client identity under mTLS. */
  tls: boolean
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
  /** The service asked about; "" (the default) is the whole server's readiness. */
  service?: string
}

/** What a grpc.health.v1 Check got: the serving status, or why there was none. */
export interface GrpcHealth {
  /** SERVING, NOT_SERVING, … as the server answered; absent when the call failed. */
  status?: string
  /** The failed call's gRPC status name, e.g. UNAVAILABLE. */
  code?: string
  /** The failed call's status name and message. */
  error?: string
}

/**
 * grpc-js details in one line: the connection error itself (without "No connection established"
 * and the resolver's notes), an OpenSSL error reduced to its reason ("tlsv13 alert certificate
 * required"), no time stamp.
 */
function shortDetails(details: string): string {
  return details
    .split('\n')[0]
    .replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\).*$/, '')
    .replace(/\.? Resolution note:.*$/, '')
    .replace(/[0-9A-F]+:error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):.*$/, '$1')
    .replace(/^No connection established\. Last error: (Error: )?/, '')
    .trim()
}

/** A service client class of the loaded protos. */
export type ClientConstructor<C> = new (target: string, channelCredentials: ChannelCredentials) => C

/**
 * How the CLI dials the daemon's gRPC face: plain, or TLS trusting `ca` (the helix CA) with the client
 * certificate under mTLS.
 */
export function channelCredentials(
  options: Pick<GrpcHealthOptions, 'tls' | 'ca' | 'cert' | 'key'>,
): ChannelCredentials {
  if (!options.tls) return credentials.createInsecure()
  const identity = options.cert && options.key ? { cert: options.cert, key: options.key } : undefined
  return credentials.createSsl(options.ca ?? null, identity?.key ?? null, identity?.cert ?? null)
}

type HealthClient = Client & {
  Check(
    request: { service: string },
    metadata: Metadata,
    options: { deadline: Date },
    callback: (err: ServiceError | null, response?: { status?: string }) => void,
  ): void
}

/**
 * One grpc.health.v1 Check against `target` (host:port), as `helix status` and `helix doctor` ask
 * the daemon's gRPC face; never throws, and gives up after `timeoutMs`.
 */
export async function checkGrpcHealth(
  target: string,
  options: GrpcHealthOptions,
  timeoutMs: number,
): Promise<GrpcHealth> {
  const Health = (loadProtos().grpc.grpc as unknown as { health: { v1: { Health: unknown } } }).health.v1
    .Health as ClientConstructor<HealthClient>
  const client = new Health(target, channelCredentials(options))
  try {
    return await new Promise<GrpcHealth>((resolve) => {
      client.Check(
        { service: options.service ?? '' },
        new Metadata(),
        { deadline: new Date(Date.now() + timeoutMs) },
        (err, response) => {
          if (err) {
            const code = statusName(err.code)
            const details = shortDetails(err.details ?? '')
            resolve({ code, error: details ? `${code}: ${details}` : code })
          } else resolve({ status: response?.status ?? 'UNKNOWN' })
        },
      )
    })
  } finally {
    client.close()
  }
}
