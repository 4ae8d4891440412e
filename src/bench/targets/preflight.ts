import { Agent, request } from 'undici'
import { Failure, UserError } from '../../shared/errors.js'
import { errorKind } from '../load-client.js'
import type { RequestPlan } from '../types.js'

export interface ProbeResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
}

// A server that does not answer one request in this time will not be benchmarked meaningfully.
const PROBE_TIMEOUT_MS = 15_000

/** Sends one request before the load starts, turning transport failures into one clear error. */
export async function probe(
  plan: Pick<RequestPlan, 'origin' | 'path' | 'method' | 'headers' | 'body' | 'tls'>,
): Promise<ProbeResponse> {
  const url = plan.origin + plan.path
  const dispatcher = plan.tls ? new Agent({ connect: plan.tls }) : undefined
  try {
    const res = await request(url, {
      method: plan.method as 'GET',
      headers: plan.headers,
      body: plan.body,
      headersTimeout: PROBE_TIMEOUT_MS,
      bodyTimeout: PROBE_TIMEOUT_MS,
      ...(dispatcher ? { dispatcher } : {}),
    })
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
  } catch (err) {
    const kind = errorKind(err)
    throw new Failure('BENCH_UNREACHABLE', `Cannot reach ${url}: ${kind}`, {
      hint: unreachableHint(kind, plan),
      cause: err,
    })
  } finally {
    await dispatcher?.close()
  }
}

/** What to do about a failed connection: certificate trouble has its own remedies. */
export function unreachableHint(kind: string, plan?: Pick<RequestPlan, 'origin' | 'tls'>): string {
  // Alerts the server sent (it wants a client certificate it trusts) come before our own checks.
  if (/ALERT_(CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|BAD_CERTIFICATE|UNKNOWN_CA)/.test(kind))
    return 'The server wants a client certificate it trusts (mTLS): pass --client-cert and --client-key.'
  if (/CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME/.test(kind))
    return "The server's certificate is not trusted: pass --cacert with the CA that signed it (for helix serve --tls, <helix dir>/certs/ca.crt, which --dir picks up by itself)."
  // A TLS 1.3 server that wants a client certificate often just closes the connection.
  if (kind === 'socket closed' && plan?.origin.startsWith('https:') && !plan.tls?.cert)
    return 'The server closed the connection: if it requires client certificates (helix serve --mtls), pass --client-cert and --client-key.'
  return 'Check --url and that the server is running (for example `helix serve`).'
}

/** The server's own error message: KServe `{"error":"…"}`, OpenAI `{"error":{"message"}}`, or the text. */
export function serverMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: string | { message?: string }; message?: string }
    const error = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message)
    if (error) return error
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.trim().split('\n')[0].slice(0, 200)
}

/**
 * Fails with one line when a probe did not succeed: 401/403 → bad key, 404 → `notFound`, other 4xx →
 * a request the server rejects (exit 2); 5xx → the server failed (exit 1).
 */
export function requireSuccess(res: ProbeResponse, url: string, notFound: () => UserError): void {
  if (res.status >= 200 && res.status < 300) return
  const detail = `HTTP ${res.status}: ${serverMessage(res.text)}`
  if (res.status === 401 || res.status === 403) {
    throw new UserError('BENCH_UNAUTHORIZED', `${url} refused the credentials (${detail})`, {
      hint: 'Pass a valid API key with --key (sent as Authorization: Bearer).',
    })
  }
  if (res.status === 404) throw notFound()
  if (res.status < 500 && res.status !== 429) {
    throw new UserError('BENCH_BAD_REQUEST', `${url} rejected the benchmark request (${detail})`, {
      hint: 'Check --input, --shape, --body or --recorded against the API the server expects.',
    })
  }
  throw new Failure('BENCH_SERVER_ERROR', `${url} failed the benchmark request (${detail})`, {
    hint: 'Check the server logs; the server must answer one request before it can be benchmarked.',
  })
}
