import { isIP } from 'node:net'
import type { HelixConfig } from '../../shared/config.js'
import { HostnameSchema } from '../../shared/config-schema.js'
import { UserError } from '../../shared/errors.js'
import type { SubjectAltName } from './certificate-profiles.js'
import { x509 } from './x509-provider.js'

/** Names every server certificate carries so local clients and health checks can always connect. */
export const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'] as const

const HOSTNAME = new RegExp(HostnameSchema.pattern as string)

/** One SAN from user input: an IP address or a DNS name (wildcards allowed); anything else is a UserError. */
export function parseSubjectAltName(text: string, source: string): SubjectAltName {
  const value = text.trim()
  if (isIP(value)) return { type: 'ip', value }
  if (HOSTNAME.test(value)) return { type: 'dns', value: value.toLowerCase() }
  throw new UserError('INVALID_NAME', `${source} '${text}' is not a valid DNS name or IP address.`, {
    hint: 'Use letters, digits, hyphens and dots only, e.g. api.example.com, or an IP such as 10.0.0.5.',
  })
}

function key(name: SubjectAltName): string {
  // The URL parser writes IPv6 in canonical form, so '::1' and '0:0::1' count as one name.
  return name.type === 'ip' && isIP(name.value) === 6
    ? `ip:${new URL(`http://[${name.value}]`).hostname}`
    : `${name.type}:${name.value}`
}

/**
 * The SANs of the server certificate: the configured domain and SANs, the extra ones asked for now,
 * those an earlier certificate carried (a rotation never drops a name), and always the loopback names.
 */
export function serverSubjectAltNames(
  config: HelixConfig,
  extra: string[] = [],
  previous: SubjectAltName[] = [],
): SubjectAltName[] {
  const names = [
    parseSubjectAltName(config.domain, 'domain'),
    ...config.sans.map((s) => parseSubjectAltName(s, 'SAN')),
    ...extra.map((s) => parseSubjectAltName(s, '--san')),
    ...previous,
    ...LOOPBACK_NAMES.map((s) => parseSubjectAltName(s, 'SAN')),
  ]
  const seen = new Set<string>()
  return names.filter((name) => {
    const k = key(name)
    if (seen.has(k)) return false
    seen.add(k)
    return true
  })
}

/** The DNS and IP SANs of a PEM certificate (other name types are not issued by Helix and are skipped). */
export function subjectAltNamesOf(pem: string): SubjectAltName[] {
  const extension = new x509.X509Certificate(pem).getExtension(x509.SubjectAlternativeNameExtension)
  return (extension?.names.items ?? [])
    .filter((n) => n.type === 'dns' || n.type === 'ip')
    .map((n) => ({ type: n.type as SubjectAltName['type'], value: n.value }))
}
