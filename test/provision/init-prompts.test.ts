import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { askInitOptions } from '../../src/provision/init-prompts.js'

/** Types keys into the real @clack/prompts through a stream, one prompt at a time. */
async function answer(keys: string[], given = {}) {
  const input = new PassThrough()
  const output = new PassThrough()
  let screen = ''
  output.on('data', (chunk) => {
    screen += String(chunk)
  })
  const asking = askInitOptions(given, { input, output })
  for (const key of keys) {
    await new Promise((r) => setTimeout(r, 30))
    input.write(key)
  }
  return { result: await asking, screen: () => screen }
}

describe('helix init prompts', () => {
  it('offers the flags and defaults, and Enter accepts each', async () => {
    const { result, screen } = await answer(['\r', '\r', '\r', '\r', '\r'], { domain: 'api.example.com' })
    expect(result).toMatchObject({
      domain: 'api.example.com',
      sans: [],
      keyType: 'ecdsa',
      adminEmail: 'admin@localhost',
    })
    expect(result.artifacts).toEqual(['nginx', 'docker', 'helm', 'monitoring'])
    expect(screen()).toContain('Public domain of the service')
    expect(screen()).toContain('Certificate key type')
  })

  it('takes typed answers: extra SANs and RSA', async () => {
    const { result } = await answer(['\r', '10.0.0.5, db.internal\r', '\x1b[B\r', '\r', '\r'])
    expect(result.sans).toEqual(['10.0.0.5', 'db.internal'])
    expect(result.keyType).toBe('rsa')
  })

  it('Ctrl-C cancels with a clear error and nothing written', async () => {
    await expect(answer(['\x03'])).rejects.toMatchObject({ code: 'CANCELLED', exitCode: 2 })
  })
})
