import { describe, expect, it } from 'vitest'
import {
  checkPasswordPolicy,
  normalisePassword,
  PASSWORD_MAX_LENGTH,
} from '../../../src/core/identity/password-policy.js'

describe('password policy', () => {
  it('refuses passwords under 8 characters and names the rule, not the password', () => {
    expect(() => checkPasswordPolicy('Xq9!vb2')).toThrowError(
      expect.objectContaining({ code: 'PASSWORD_TOO_SHORT' }),
    )
    try {
      checkPasswordPolicy('Xq9!vb2')
    } catch (err) {
      expect((err as Error).message).not.toContain('Xq9!vb2')
      expect((err as { exitCode: number }).exitCode).toBe(2)
    }
  })

  it('counts code points, so 8 emoji are 8 characters', () => {
    expect(checkPasswordPolicy('🦊🐙🦀🐢🦉🐝🦋🐞')).toEqual({ advice: expect.stringContaining('15') })
  })

  it('accepts 128 characters and refuses 129', () => {
    expect(checkPasswordPolicy(`${'a'.repeat(PASSWORD_MAX_LENGTH - 1)}Z`)).toEqual({})
    expect(() => checkPasswordPolicy('a'.repeat(PASSWORD_MAX_LENGTH + 1))).toThrowError(
      expect.objectContaining({ code: 'PASSWORD_TOO_LONG' }),
    )
  })

  it('refuses common passwords whatever their case', () => {
    for (const pw of ['password', 'Password1', 'QWERTYUIOP', 'iloveyou', 'sunshine']) {
      expect(() => checkPasswordPolicy(pw), pw).toThrowError(
        expect.objectContaining({ code: 'PASSWORD_COMMON' }),
      )
    }
  })

  it('has no composition rules: lowercase words pass, long ones without advice', () => {
    expect(checkPasswordPolicy('correct horse battery staple')).toEqual({})
    expect(checkPasswordPolicy('zebrapianotulip').advice).toBeUndefined()
    expect(checkPasswordPolicy('zebrapiano').advice).toMatch(/15/)
  })

  it('honours a stricter configured minimum but never a weaker one', () => {
    expect(() => checkPasswordPolicy('zebrapiano', 12)).toThrowError(/at least 12/)
    expect(() => checkPasswordPolicy('zebra', 4)).toThrowError(/at least 8/)
  })

  it('normalises to NFC', () => {
    expect(normalisePassword('e\u0301')).toBe('\u00e9')
  })
})
