import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_PROXIED_IDLE_GRACE_S,
  loadRuntimeConfig,
} from '../../../src/http/serve-config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'
import { writeTestCerts } from './openssl-certs.js'

let dir: string
let cleanup: () => Promise<void>
beforeEach(async () => {
  ;({ dir, cleanup } = await tempDir('helix-config-'))
})
afterEach(async () => cleanup())

describe('loadRuntimeConfig', () => {
  it('defaults to 127.0.0.1:8080, plain HTTP, a 64 MiB body limit and models/ in the helix dir', async () => {
    const config = await loadRuntimeConfig(new HelixHome(dir), {}, {})
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      bodyLimit: 64 * 1024 * 1024,
      trustProxy: [],
      drainTimeoutMs: DEFAULT_DRAIN_TIMEOUT_MS,
      // No proxy: idle keep-alive connections close as soon as a drain begins.
      drainIdleGraceMs: 0,
      logLevel: 'info',
      modelsDir: join(dir, 'models'),
    })
    expect(config.tls).toBeUndefined()
  })

  it('layers helix.yaml < env < flags', async () => {
    await writeFile(
      join(dir, 'helix.yaml'),
      'server:\n  host: 0.0.0.0\n  port: 9000\n  body_limit: 4096\n  trust_proxy: [127.0.0.1]\nmodels:\n  repository: /srv/models\n',
    )
    const home = new HelixHome(dir)
    expect(await loadRuntimeConfig(home, {}, {})).toMatchObject({
      host: '0.0.0.0',
      port: 9000,
      bodyLimit: 4096,
      trustProxy: ['127.0.0.1'],
      modelsDir: '/srv/models',
    })
    const env = {
      HELIX_PORT: '9100',
      HELIX_LOG_LEVEL: 'warn',
      HELIX_DRAIN_TIMEOUT_MS: '250',
      HELIX_TRUST_PROXY: 'uniquelocal, 10.1.2.3 ,fd00::/8',
    }
    expect(await loadRuntimeConfig(home, {}, env)).toMatchObject({
      port: 9100,
      logLevel: 'warn',
      drainTimeoutMs: 250,
      trustProxy: ['uniquelocal', '10.1.2.3', 'fd00::/8'],
      // Behind a proxy: its pool gets longer than the generated nginx keeps idle connections (4 s).
      drainIdleGraceMs: DEFAULT_PROXIED_IDLE_GRACE_S * 1000,
    })
    // An empty HELIX_TRUST_PROXY trusts nobody, whatever helix.yaml says.
    expect((await loadRuntimeConfig(home, {}, { HELIX_TRUST_PROXY: '' })).trustProxy).toEqual([])
    expect(await loadRuntimeConfig(home, { port: 0, host: '::1', logLevel: 'debug' }, env)).toMatchObject({
      port: 0,
      host: '::1',
      logLevel: 'debug',
    })
  })

  it('logging: auto format and error-only request lines by default; helix.yaml < HELIX_LOG_FORMAT < --log-format', async () => {
    const home = new HelixHome(dir)
    expect(await loadRuntimeConfig(home, {}, {})).toMatchObject({
      logFormat: 'auto',
      requestLog: { mode: 'errors', sampleRate: 0.01 },
    })
    await writeFile(
      join(dir, 'helix.yaml'),
      'logging:\n  format: json\n  requests: sample\n  sample_rate: 0.25\n',
    )
    expect(await loadRuntimeConfig(home, {}, {})).toMatchObject({
      logFormat: 'json',
      requestLog: { mode: 'sample', sampleRate: 0.25 },
    })
    expect((await loadRuntimeConfig(home, {}, { HELIX_LOG_FORMAT: 'pretty' })).logFormat).toBe('pretty')
    expect(
      (await loadRuntimeConfig(home, { logFormat: 'json' }, { HELIX_LOG_FORMAT: 'pretty' })).logFormat,
    ).toBe('json')
    await expect(loadRuntimeConfig(home, {}, { HELIX_LOG_FORMAT: 'xml' })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('logging.format'),
    })
    await writeFile(join(dir, 'helix.yaml'), 'logging:\n  sample_rate: 2\n')
    await expect(loadRuntimeConfig(home, {}, {})).rejects.toMatchObject({
      message: expect.stringContaining('logging.sample_rate'),
    })
  })

  it('refuses bad values with a clear error before anything starts', async () => {
    const home = new HelixHome(dir)
    await expect(loadRuntimeConfig(home, { logLevel: 'loud' }, {})).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: "Unknown log level 'loud'.",
    })
    await expect(loadRuntimeConfig(home, {}, { HELIX_DRAIN_TIMEOUT_MS: 'soon' })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    })
    await expect(loadRuntimeConfig(home, { port: 70000 }, {})).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('server.port'),
    })
  })

  it('--tls without certificates names the missing file and how to create it', async () => {
    const error = await loadRuntimeConfig(new HelixHome(dir), { tls: true }, {}).catch((e) => e)
    expect(error).toMatchObject({
      code: 'TLS_FILES_MISSING',
      message: expect.stringContaining(join(dir, 'certs', 'server.crt')),
    })
    expect(error.hint).toMatch(/helix init/)
  })

  describe.skipIf(!hasTool('openssl'))('with certificates', () => {
    it('--tls reads the server pair; --mtls also the CA and implies TLS', async () => {
      await writeTestCerts(dir)
      const home = new HelixHome(dir)
      const tls = await loadRuntimeConfig(home, { tls: true }, {})
      expect(tls.tls?.cert.toString()).toMatch(/BEGIN CERTIFICATE/)
      expect(tls.tls?.mtls).toBe(false)
      expect(tls.tls?.ca).toBeUndefined()
      const mtls = await loadRuntimeConfig(home, { mtls: true }, {})
      expect(mtls.tls?.mtls).toBe(true)
      expect(mtls.tls?.ca?.toString()).toMatch(/BEGIN CERTIFICATE/)
    })
  })
})
