import { writeFile } from 'node:fs/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadConfig, parseConfig } from '../../src/shared/config.js'
import { HelixHome } from '../../src/shared/home.js'
import { tempDir } from '../helpers/cli.js'

describe('helix.yaml config', () => {
  let home: HelixHome
  let cleanup: () => Promise<void>
  beforeEach(async () => {
    const t = await tempDir()
    home = new HelixHome(t.dir)
    cleanup = t.cleanup
  })
  afterEach(() => cleanup())

  it('fills defaults when there is no file', async () => {
    const config = await loadConfig(home, {}, {})
    expect(config.domain).toBe('localhost')
    expect(config.server).toMatchObject({ host: '127.0.0.1', port: 8080, tls: false })
    expect(config.tls.server_days).toBe(90)
    expect(config.nginx.upstreams).toEqual(['127.0.0.1:8080'])
  })

  it('layers file < env < overrides', async () => {
    await writeFile(home.configFile, 'domain: example.com\nserver:\n  port: 9000\n  host: 0.0.0.0\n')
    const env = {
      HELIX_PORT: '9100',
      DATABASE_URL: 'postgres://x@db/h',
      REDIS_URL: 'redis://r',
      HELIX_HOST: '::1',
      HELIX_DEVICE: 'cpu',
    }
    const config = await loadConfig(home, { server: { port: 9200 } }, env)
    expect(config.domain).toBe('example.com')
    expect(config.server.port).toBe(9200)
    expect(config.server.host).toBe('::1')
    expect(config.database.url).toBe('postgres://x@db/h')
    expect(config.redis.url).toBe('redis://r')
    expect(config.models.device).toBe('cpu')
  })

  it('treats a section holding only comments as absent', async () => {
    await writeFile(home.configFile, 'redis:\n  # url: redis://x\n')
    expect((await loadConfig(home, {}, {})).redis).toEqual({})
  })

  it('names the bad field and how to fix it', async () => {
    await writeFile(home.configFile, 'server:\n  port: 99999\n')
    await expect(loadConfig(home, {}, {})).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      exitCode: 2,
      message: expect.stringContaining('server.port'),
    })
  })

  it('names the choices of a setting that takes one of a few words, and the value given', () => {
    expect(() => parseConfig({ models: { isolation: 'proces' } })).toThrow(
      expect.objectContaining({
        code: 'CONFIG_INVALID',
        message: 'helix.yaml: models.isolation: must be one of thread, process (got "proces")',
      }),
    )
    expect(parseConfig({ models: { isolation: 'process' } }).models.isolation).toBe('process')
    expect(parseConfig({}).models.isolation).toBe('thread')
  })

  it('accepts the proxy addresses, ranges and names Fastify understands, and names a bad one', () => {
    const good = ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', 'loopback', 'linklocal', 'uniquelocal']
    expect(parseConfig({ server: { trust_proxy: good } }).server.trust_proxy).toEqual(good)
    for (const bad of ['nginx', '10.0.0.0/33', '::/129', '1.2.3.4/8/1', '10.0.0.0/', '300.1.1.1', '']) {
      expect(() => parseConfig({ server: { trust_proxy: ['127.0.0.1', bad] } }), bad).toThrow(
        expect.objectContaining({
          code: 'CONFIG_INVALID',
          message: `helix.yaml: server.trust_proxy: '${bad}' is not an address or range`,
        }),
      )
    }
  })

  it('rejects YAML syntax errors and non-mappings clearly', async () => {
    await writeFile(home.configFile, 'server: [1, 2\n')
    await expect(loadConfig(home, {}, {})).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('not valid YAML'),
    })
    await writeFile(home.configFile, '- a\n- b\n')
    await expect(loadConfig(home, {}, {})).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('mapping'),
    })
    expect(() => parseConfig('text')).toThrow(/mapping/)
  })
})
