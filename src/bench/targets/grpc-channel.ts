import { type ChannelCredentials, credentials, Metadata } from '@grpc/grpc-js'
import type { TlsOptions } from '../types.js'

/** How the preflight's channel is set up: any answer size, a bench user agent, no retries. */
export function channelOptions(): Record<string, string | number> {
  return {
    'grpc.max_receive_message_length': -1,
    'grpc.primary_user_agent': 'helix-bench',
    // A call the channel would retry by itself (a refused stream) is reported as it happened.
    'grpc.enable_retries': 0,
  }
}

let ipServernameQuiet = false

/**
 * grpc-js sends the target's host as the TLS server name even when it is an IP address, which
 * RFC 6066 forbids (servers ignore it), and Node then prints a deprecation warning (DEP0123) once
 * per process about what only grpc-js could change. That one warning is dropped; any other prints.
 */
function quietIpServernameWarning(): void {
  if (ipServernameQuiet) return
  ipServernameQuiet = true
  const emit = process.emitWarning
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]) {
    const code = typeof rest[0] === 'object' ? (rest[0] as { code?: string } | null)?.code : rest[1]
    if (code === 'DEP0123') return
    return (emit as (...args: unknown[]) => void).call(this, warning, ...rest)
  } as typeof process.emitWarning
}

/** Plaintext (h2c) without TLS settings; with them, TLS that always verifies the server's certificate. */
export function channelCredentials(tls: TlsOptions | undefined): ChannelCredentials {
  if (!tls) return credentials.createInsecure()
  quietIpServernameWarning()
  return credentials.createSsl(
    tls.ca ? Buffer.from(tls.ca.join('\n')) : null,
    tls.key ? Buffer.from(tls.key) : null,
    tls.cert ? Buffer.from(tls.cert) : null,
  )
}

/** Metadata sent with every call. */
export function callMetadata(entries: Record<string, string>): Metadata {
  const metadata = new Metadata()
  for (const [key, value] of Object.entries(entries)) metadata.set(key, value)
  return metadata
}
