import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { renderArtifacts } from '../../../src/provision/render/render.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'

/** How prometheus.yml reaches /metrics, which needs the metrics scope when auth is on. */
describe('prometheus.yml and the metrics scope', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  async function render(name: string, config: Record<string, unknown>, key?: string) {
    const home = new HelixHome(join(dir, name))
    if (key !== undefined) {
      await mkdir(home.monitoringDir, { recursive: true })
      await writeFile(join(home.monitoringDir, 'metrics.key'), key, { mode: 0o600 })
    }
    await renderArtifacts(home, parseConfig({ nginx: { upstreams: ['127.0.0.1:8080'] }, ...config }), [
      'monitoring',
    ])
    const file = join(home.monitoringDir, 'prometheus.yml')
    const text = await readFile(file, 'utf8')
    return { home, file, text, helix: parse(text).scrape_configs[0] }
  }

  it('sends monitoring/metrics.key (absolute path) when it is there, and says how to make it when not', async () => {
    const withKey = await render('with-key', {}, 'hx_example_metrics_key\n')
    expect(withKey.helix.authorization).toEqual({
      credentials_file: join(withKey.home.monitoringDir, 'metrics.key'),
    })
    expect(withKey.text).not.toContain('hx_example_metrics_key')
    if (hasTool('promtool')) {
      const check = await execa('promtool', ['check', 'config', '--syntax-only', withKey.file], {
        reject: false,
      })
      expect(check.exitCode, check.stderr).toBe(0)
    }
    const without = await render('without-key', {})
    expect(without.helix.authorization).toBeUndefined()
    expect(without.text).toContain('write a key with it to metrics.key')
    const noAuth = await render('no-auth', { auth: { enabled: false } })
    expect(noAuth.text).not.toContain('metrics scope')
  })

  it('scrapes the loopback metrics port without credentials when server.metrics_port is set', async () => {
    const { helix } = await render('metrics-port', { server: { metrics_port: 9464 } }, 'hx_unused\n')
    expect(helix).toMatchObject({ scheme: 'http', static_configs: [{ targets: ['127.0.0.1:9464'] }] })
    expect(helix.authorization).toBeUndefined()
    expect(helix.tls_config).toBeUndefined()
  })
})
