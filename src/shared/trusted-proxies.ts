import { BlockList, isIP } from 'node:net'

/** The named ranges of server.trust_proxy, as proxy-addr (Fastify's trustProxy) defines them. */
const NAMED_RANGES: Record<string, [string, number, 'ipv4' | 'ipv6'][]> = {
  loopback: [
    ['127.0.0.0', 8, 'ipv4'],
    ['::1', 128, 'ipv6'],
  ],
  linklocal: [
    ['169.254.0.0', 16, 'ipv4'],
    ['fe80::', 10, 'ipv6'],
  ],
  uniquelocal: [
    ['10.0.0.0', 8, 'ipv4'],
    ['172.16.0.0', 12, 'ipv4'],
    ['192.168.0.0', 16, 'ipv4'],
    ['fc00::', 7, 'ipv6'],
  ],
}

function familyOf(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4'
}

/** An IPv4-mapped IPv6 address (::ffff:1.2.3.4) as the IPv4 address it stands for. */
function plain(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  return mapped ? mapped[1] : address
}

/**
 * The client address behind trusted proxies, for the faces that do not get it from Fastify (gRPC):
 * with the socket's peer among server.trust_proxy (validated by the config loader), X-Forwarded-For
 * is read from the right and the first address that is not itself a trusted proxy is the client;
 * otherwise the peer is the client. The same rule as REST's request.ip.
 */
export function clientAddressResolver(
  trustProxy: readonly string[],
): (peer: string, forwardedFor?: string) => string {
  if (trustProxy.length === 0) return (peer) => peer
  const trusted = new BlockList()
  for (const entry of trustProxy) {
    const named = NAMED_RANGES[entry]
    if (named) {
      for (const [network, prefix, family] of named) trusted.addSubnet(network, prefix, family)
      continue
    }
    const [address, bits] = entry.split('/')
    if (bits === undefined) trusted.addAddress(address, familyOf(address))
    else trusted.addSubnet(address, Number(bits), familyOf(address))
  }
  const isTrusted = (address: string) => {
    const ip = plain(address)
    return isIP(ip) !== 0 && trusted.check(ip, familyOf(ip))
  }
  return (peer, forwardedFor) => {
    if (!isTrusted(peer) || !forwardedFor) return peer
    const hops = forwardedFor
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean)
    for (let i = hops.length - 1; i >= 0; i--) {
      if (isIP(plain(hops[i])) === 0) return peer
      if (!isTrusted(hops[i]) || i === 0) return plain(hops[i])
    }
    return peer
  }
}
