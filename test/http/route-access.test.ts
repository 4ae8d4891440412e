import { describe, expect, it } from 'vitest'
import { matchesPublicPattern } from '../../src/core/identity/access.js'
import { bearerCredential } from '../../src/core/identity/authenticator.js'
import { parseDuration, parseWhen } from '../../src/core/identity/duration.js'
import { actorOf } from '../../src/core/identity/principal.js'
import { itemsOf } from '../../src/http/plugins/auth.js'
import { routeAccess } from '../../src/http/route-access.js'

const pub = ['/v2/health/*']

describe('route access', () => {
  it('resolves what a route declares, with the model from its parameter or its body', () => {
    expect(
      routeAccess(
        { scope: 'infer', model: 'param' },
        '/v2/models/:model/infer',
        '/v2/models/cls/infer',
        { model: 'cls' },
        pub,
      ),
    ).toEqual({ kind: 'scope', need: { scope: 'infer', model: 'cls' } })
    expect(
      routeAccess(
        { scope: 'models:admin' },
        '/v2/repository/models/:model/load',
        '/x',
        { model: 'cls' },
        pub,
      ),
    ).toEqual({
      kind: 'scope',
      need: { scope: 'models:admin' },
    })
    expect(
      routeAccess({ scope: 'infer', model: 'body' }, '/v1/chat/completions', '/v1/chat/completions', {}, pub),
    ).toEqual({
      kind: 'scope',
      need: { scope: 'infer' },
      modelFromBody: true,
    })
    expect(routeAccess('signed-in', '/auth/me', '/auth/me', {}, pub)).toEqual({ kind: 'signed-in' })
    expect(routeAccess('public', '/auth/login', '/auth/login', {}, pub)).toEqual({ kind: 'public' })
  })

  it('locks a route that declares nothing, opens configured public paths, and leaves 404s to the handler', () => {
    expect(routeAccess(undefined, '/something-new', '/something-new', {}, pub)).toEqual({
      kind: 'scope',
      need: { scope: 'admin' },
    })
    const health = { scope: 'models:read' } as const
    expect(routeAccess(health, '/v2/health/live', '/v2/health/live', {}, pub)).toEqual({ kind: 'public' })
    expect(routeAccess(health, '/v2/health/live', '/v2/health/live', {}, [])).toEqual({
      kind: 'scope',
      need: { scope: 'models:read' },
    })
    expect(routeAccess(undefined, undefined, '/nope', {}, pub)).toEqual({ kind: 'public' })
  })

  it('matches exact and prefix patterns', () => {
    expect(matchesPublicPattern('/v2', ['/v2'])).toBe(true)
    expect(matchesPublicPattern('/v2/x', ['/v2'])).toBe(false)
    expect(matchesPublicPattern('/v2/x', ['/v2/*'])).toBe(true)
  })

  it('reads Bearer credentials and nothing else', () => {
    expect(bearerCredential(undefined)).toBeUndefined()
    expect(bearerCredential('Bearer abc.def')).toBe('abc.def')
    expect(bearerCredential('bearer  hx_x ')).toBe('hx_x')
    expect(bearerCredential('Basic dXNlcg==')).toBe('')
    expect(bearerCredential('Bearer a b')).toBe('')
  })

  it('counts items of KServe and OpenAI bodies', () => {
    expect(itemsOf({ inputs: [{ shape: [8, 4] }] })).toBe(8)
    expect(itemsOf({ inputs: [{ shape: [4] }] })).toBe(1)
    expect(itemsOf({ input: ['a', 'b', 'c'] })).toBe(3)
    expect(itemsOf({ input: 'a' })).toBe(1)
    expect(itemsOf({})).toBe(0)
    expect(itemsOf(Buffer.from('x'))).toBe(0)
    expect(itemsOf(null)).toBe(0)
  })

  it('names actors for the audit log', () => {
    expect(actorOf(undefined)).toEqual({ actorUserId: null, actor: 'anonymous' })
    expect(actorOf({ kind: 'apikey', keyId: 'k', scopes: [] })).toEqual({
      actorUserId: null,
      actor: 'apikey:k',
    })
    expect(actorOf({ kind: 'user', userId: 'u', scopes: [] })).toEqual({ actorUserId: 'u', actor: 'user:u' })
  })

  it('parses durations and points in time for CLI flags', () => {
    expect(parseDuration('90s')).toBe(90_000)
    expect(parseDuration('1h')).toBe(3_600_000)
    expect(parseDuration('2w')).toBe(1_209_600_000)
    expect(() => parseDuration('1y', 'grace')).toThrowError(/--grace/)
    expect(parseWhen('1h', 'past', 'since', 10_000_000).getTime()).toBe(10_000_000 - 3_600_000)
    expect(parseWhen('1d', 'future', 'expires', 0).getTime()).toBe(86_400_000)
    expect(parseWhen('2026-01-31T00:00:00Z', 'past', 'since').toISOString()).toBe('2026-01-31T00:00:00.000Z')
    expect(() => parseWhen('someday', 'past', 'since')).toThrowError(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    )
  })
})
