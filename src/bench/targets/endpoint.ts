import { UserError } from '../../shared/errors.js'

/** Splits --url into the pool origin and a base path, rejecting anything that is not http(s). */
export function parseBaseUrl(url: string): { origin: string; basePath: string; pathAndQuery: string } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new UserError('BENCH_BAD_URL', `--url is not a valid URL: "${url}"`, {
      hint: 'Pass --url http://127.0.0.1:8080.',
    })
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UserError('BENCH_BAD_URL', `--url must be http:// or https:// (got "${url}")`, {
      hint: 'Pass --url http://127.0.0.1:8080.',
    })
  }
  return {
    origin: parsed.origin,
    basePath: parsed.pathname.replace(/\/+$/, ''),
    pathAndQuery: parsed.pathname + parsed.search,
  }
}

/** basePath + endpoint, unless --url already names the endpoint. */
export function endpointPath(basePath: string, endpoint: string): string {
  return basePath.endsWith(endpoint) ? basePath : basePath + endpoint
}
