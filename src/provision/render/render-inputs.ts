import { isIP } from 'node:net'
import { HostnameSchema } from '../../shared/config-schema.js'
import { UserError } from '../../shared/errors.js'

const HOSTNAME = new RegExp(HostnameSchema.pattern as string)
const isValidHostname = (name: string) => HOSTNAME.test(name) && !name.startsWith('*.')

/**
 * Values from helix.yaml and flags end up verbatim in nginx, compose and Prometheus files, so each one
 * is checked against a strict shape first: a stray `;` or `}` would otherwise change the meaning of
 * the generated configuration.
 */

/** A `host:port` (or `[v6]:port`) daemon address; returns it normalised. */
export function checkUpstream(address: string): string {
  const value = address.trim()
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value)
  const host = match?.[1] ?? match?.[2]
  const port = Number(match?.[3])
  const hostOk =
    host !== undefined && (match?.[1] ? isIP(host) === 6 : isIP(host) === 4 || isValidHostname(host))
  if (!match || !hostOk || port < 1 || port > 65535) {
    throw new UserError('INVALID_UPSTREAM', `Upstream '${address}' is not a host:port address.`, {
      hint: 'Give each daemon as host:port, e.g. --upstream 127.0.0.1:8080 --upstream 10.0.0.6:8080 ([::1]:8080 for IPv6).',
    })
  }
  return value
}

/** An IP address or CIDR network for nginx `allow`. */
export function checkAllowSource(source: string): string {
  const value = source.trim()
  const [address, bits, extra] = value.split('/')
  const family = isIP(address)
  const maxBits = family === 6 ? 128 : 32
  const bitsOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= maxBits)
  if (family === 0 || !bitsOk || extra !== undefined) {
    throw new UserError(
      'INVALID_ALLOW',
      `nginx.metrics_allow entry '${source}' is not an IP address or CIDR network.`,
      {
        hint: 'Use entries such as 127.0.0.1, ::1 or 10.0.0.0/8 in nginx.metrics_allow of helix.yaml.',
      },
    )
  }
  return value
}

/** The server name (domain) for nginx and the Ingress host. */
export function checkServerName(name: string): string {
  if (isIP(name) || isValidHostname(name)) return name
  throw new UserError('INVALID_NAME', `domain '${name}' in helix.yaml is not a valid DNS name.`, {
    hint: 'Set domain to a name such as api.example.com in helix.yaml (or run `helix init --force --domain …`).',
  })
}

/** An e-mail address for alert routing. */
export function checkEmail(email: string, key = 'admin_email'): string {
  if (/^[^\s@'"\\]+@[^\s@'"\\]+$/.test(email)) return email
  throw new UserError('INVALID_EMAIL', `${key} '${email}' in helix.yaml is not an e-mail address.`, {
    hint: `Set ${key} to an address such as ops@example.com in helix.yaml.`,
  })
}
