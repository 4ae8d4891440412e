import { describe, expect, it } from 'vitest'
import { resolvePassphrase, type SecretPrompt } from '../../../src/provision/jwt/backup-passphrase.js'
import { HelixError } from '../../../src/shared/errors.js'

/** A scripted stand-in for the terminal: answers the prompts in order and records the questions. */
function answers(...values: (string | symbol)[]): SecretPrompt & { asked: string[] } {
  const asked: string[] = []
  const ask = async (message: string) => {
    asked.push(message)
    return values.shift() as string | symbol
  }
  return Object.assign(ask, { asked })
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const err = await promise.catch((e: unknown) => e)
  expect(err).toBeInstanceOf(HelixError)
  return (err as HelixError).code
}

describe('resolvePassphrase', () => {
  it('takes HELIX_BACKUP_PASSPHRASE first, without prompting', async () => {
    const ask = answers('typed')
    const value = await resolvePassphrase('backup', {
      interactive: true,
      env: { HELIX_BACKUP_PASSPHRASE: 'from-env' },
      ask,
    })
    expect(value).toBe('from-env')
    expect(ask.asked).toEqual([])
  })

  it('without the variable and without a terminal it is PASSPHRASE_REQUIRED', async () => {
    expect(await codeOf(resolvePassphrase('restore', { interactive: false, env: {} }))).toBe(
      'PASSPHRASE_REQUIRED',
    )
  })

  it('a backup asks twice and requires both to match', async () => {
    const ask = answers('same words', 'same words')
    expect(await resolvePassphrase('backup', { interactive: true, env: {}, ask })).toBe('same words')
    expect(ask.asked).toHaveLength(2)
    expect(
      await codeOf(resolvePassphrase('backup', { interactive: true, env: {}, ask: answers('one', 'two') })),
    ).toBe('PASSPHRASE_MISMATCH')
  })

  it('a restore asks once', async () => {
    const ask = answers('the words')
    expect(await resolvePassphrase('restore', { interactive: true, env: {}, ask })).toBe('the words')
    expect(ask.asked).toEqual(['Passphrase of the backup'])
  })

  it('Ctrl-C at either question is CANCELLED', async () => {
    const cancel = Symbol('cancel')
    expect(
      await codeOf(resolvePassphrase('restore', { interactive: true, env: {}, ask: answers(cancel) })),
    ).toBe('CANCELLED')
    expect(
      await codeOf(resolvePassphrase('backup', { interactive: true, env: {}, ask: answers('x', cancel) })),
    ).toBe('CANCELLED')
  })
})
