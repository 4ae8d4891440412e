import { describe, expect, it } from 'vitest'
import { clientAddressResolver } from '../../src/shared/trusted-proxies.js'

describe('clientAddressResolver (server.trust_proxy for the gRPC face)', () => {
  it('believes nobody by default: the peer is the client', () => {
    expect(clientAddressResolver([])('10.0.0.5', '203.0.113.9')).toBe('10.0.0.5')
  })

  it('reads X-Forwarded-For from the right, skipping trusted proxies, only when the peer is trusted', () => {
    const resolve = clientAddressResolver(['127.0.0.1', '10.0.0.0/8'])
    expect(resolve('127.0.0.1', '203.0.113.9')).toBe('203.0.113.9')
    expect(resolve('127.0.0.1', '198.51.100.1, 203.0.113.9, 10.1.2.3')).toBe('203.0.113.9')
    expect(resolve('192.0.2.7', '203.0.113.9')).toBe('192.0.2.7')
    expect(resolve('127.0.0.1')).toBe('127.0.0.1')
    expect(resolve('127.0.0.1', 'not-an-ip')).toBe('127.0.0.1')
    expect(resolve('127.0.0.1', '10.0.0.9, 10.0.0.8')).toBe('10.0.0.9')
  })

  it('knows the named ranges and IPv6, including IPv4-mapped peers', () => {
    const resolve = clientAddressResolver(['loopback', 'uniquelocal', 'fd00::/8'])
    expect(resolve('::1', '2001:db8::1')).toBe('2001:db8::1')
    expect(resolve('::ffff:127.0.0.1', '203.0.113.9')).toBe('203.0.113.9')
    expect(resolve('172.20.1.1', '203.0.113.9')).toBe('203.0.113.9')
    expect(resolve('fd12::1', '203.0.113.9')).toBe('203.0.113.9')
    expect(resolve('8.8.8.8', '203.0.113.9')).toBe('8.8.8.8')
    expect(clientAddressResolver(['linklocal'])('169.254.1.1', '203.0.113.9')).toBe('203.0.113.9')
  })
})
