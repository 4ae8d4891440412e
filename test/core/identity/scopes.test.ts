import { describe, expect, it } from 'vitest'
import { allows, canGrant, parseScopes, userScopes } from '../../../src/core/identity/scopes.js'

describe('scopes', () => {
  it('parses, splits on commas and spaces, de-duplicates and sorts', () => {
    expect(parseScopes(['infer, models:read', 'infer', 'infer:cls'])).toEqual([
      'infer',
      'infer:cls',
      'models:read',
    ])
  })

  it('refuses unknown scopes and empty lists with a UserError', () => {
    expect(() => parseScopes(['root'])).toThrowError(expect.objectContaining({ code: 'SCOPE_INVALID' }))
    expect(() => parseScopes(['infer:'])).toThrowError(/Unknown scope/)
    expect(() => parseScopes(['infer:../x'])).toThrowError(/Unknown scope/)
    expect(() => parseScopes([' '])).toThrowError(/At least one/)
  })

  it('infer allows every model; infer:<m> only that model', () => {
    expect(allows(['infer'], { scope: 'infer', model: 'cls' })).toBe(true)
    expect(allows(['infer:cls'], { scope: 'infer', model: 'cls' })).toBe(true)
    expect(allows(['infer:cls'], { scope: 'infer', model: 'det' })).toBe(false)
    expect(allows(['infer:cls'], { scope: 'infer' })).toBe(false)
  })

  it('models:admin implies models:read; admin implies everything; infer is not admin', () => {
    expect(allows(['models:admin'], { scope: 'models:read' })).toBe(true)
    expect(allows(['models:read'], { scope: 'models:admin' })).toBe(false)
    expect(allows(['admin'], { scope: 'models:admin' })).toBe(true)
    expect(allows(['infer'], { scope: 'admin' })).toBe(false)
    expect(allows(['infer'], { scope: 'models:read' })).toBe(false)
  })

  it('monitor is a scope of its own: admin implies it, nothing else does, and it grants nothing else', () => {
    expect(parseScopes(['monitor, infer'])).toEqual(['infer', 'monitor'])
    expect(allows(['monitor'], { scope: 'monitor' })).toBe(true)
    expect(allows(['admin'], { scope: 'monitor' })).toBe(true)
    for (const other of [['infer'], ['infer:cls'], ['models:read'], ['models:admin']]) {
      expect(allows(other, { scope: 'monitor' })).toBe(false)
    }
    expect(allows(['monitor'], { scope: 'infer', model: 'cls' })).toBe(false)
    expect(allows(['monitor'], { scope: 'models:read' })).toBe(false)
    expect(allows(['monitor'], { scope: 'admin' })).toBe(false)
    expect(canGrant(['admin'], ['monitor'])).toBe(true)
    expect(canGrant(['infer', 'models:read'], ['monitor'])).toBe(false)
  })

  it('whoever may call a model may read its metadata; models:read keeps the rest', () => {
    expect(allows(['infer'], { scope: 'models:read', model: 'cls' })).toBe(true)
    expect(allows(['infer:cls'], { scope: 'models:read', model: 'cls' })).toBe(true)
    expect(allows(['infer:cls'], { scope: 'models:read', model: 'det' })).toBe(false)
    expect(allows(['infer:cls'], { scope: 'models:read' })).toBe(false)
    expect(allows(['models:read'], { scope: 'models:read', model: 'det' })).toBe(true)
    // Reading never lends the right to run.
    expect(allows(['models:read'], { scope: 'infer', model: 'det' })).toBe(false)
  })

  it('users get infer + models:read, admins admin; nobody grants more than they hold', () => {
    expect(userScopes('user')).toEqual(['infer', 'models:read'])
    expect(userScopes('admin')).toEqual(['admin'])
    expect(canGrant(['infer', 'models:read'], ['infer:cls', 'models:read'])).toBe(true)
    expect(canGrant(['infer'], ['admin'])).toBe(false)
    expect(canGrant(['admin'], ['models:admin', 'infer'])).toBe(true)
  })
})
