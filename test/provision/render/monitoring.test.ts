import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { DASHBOARD_PANELS, planMonitoring } from '../../../src/provision/render/monitoring-values.js'
import { renderArtifacts } from '../../../src/provision/render/render.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'
import { writeSelfSignedCerts } from './self-signed.js'

const UPSTREAMS = ['127.0.0.1:8080', '127.0.0.1:8081']

describe('monitoring files', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let home: HelixHome

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    home = new HelixHome(join(dir, 'h'))
    await renderArtifacts(
      home,
      parseConfig({ admin_email: 'ops@example.com', nginx: { upstreams: UPSTREAMS } }),
      ['monitoring'],
    )
  })
  afterAll(() => cleanup())

  const path = (name: string) => join(home.monitoringDir, name)

  it('prometheus.yml scrapes /metrics of every daemon instance and alerts through Alertmanager', async () => {
    const config = parse(await readFile(path('prometheus.yml'), 'utf8'))
    const helix = config.scrape_configs.find((s: { job_name: string }) => s.job_name === 'helix')
    expect(helix).toMatchObject({
      metrics_path: '/metrics',
      scheme: 'http',
      static_configs: [{ targets: UPSTREAMS }],
    })
    expect(config.rule_files).toEqual(['rules.yml'])
    expect(config.alerting.alertmanagers[0].static_configs[0].targets).toEqual(['127.0.0.1:9093'])
  })

  it('alertmanager.yml routes every alert to the administrator', async () => {
    const config = parse(await readFile(path('alertmanager.yml'), 'utf8'))
    const receiver = config.receivers.find((r: { name: string }) => r.name === config.route.receiver)
    expect(receiver.email_configs[0].to).toBe('ops@example.com')
  })

  it('the Grafana dashboard is JSON whose panels query helix metrics', async () => {
    const dashboard = JSON.parse(await readFile(path('grafana-dashboard.json'), 'utf8'))
    expect(dashboard.uid).toBe('helix-overview')
    expect(dashboard.panels).toHaveLength(DASHBOARD_PANELS.length)
    expect(new Set(dashboard.panels.map((p: { id: number }) => p.id)).size).toBe(DASHBOARD_PANELS.length)
    for (const panel of dashboard.panels) {
      expect(panel.targets.length).toBeGreaterThan(0)
      for (const target of panel.targets) expect(target.expr).toMatch(/helix_|up\{job="helix"\}/)
    }
  })

  it('scrapes over TLS with the helix CA (and client certificate) when the daemon serves TLS', () => {
    const [prometheus] = planMonitoring(home, parseConfig({ server: { mtls: true } }))
    const helix = parse(prometheus.data).scrape_configs[0]
    expect(helix.scheme).toBe('https')
    expect(helix.tls_config).toEqual({
      ca_file: join(home.certsDir, 'ca.crt'),
      cert_file: join(home.certsDir, 'client.crt'),
      key_file: join(home.certsDir, 'client.key'),
    })
  })

  it('refuses an admin_email that would break the file', () => {
    expect(() => planMonitoring(home, parseConfig({ admin_email: 'a"b@x' }))).toThrow(
      expect.objectContaining({ code: 'INVALID_EMAIL' }),
    )
  })

  describe.skipIf(!hasTool('promtool'))('promtool', () => {
    it('accepts prometheus.yml and rules.yml', async () => {
      const config = await execa('promtool', ['check', 'config', path('prometheus.yml')], { reject: false })
      expect(config.stdout).toContain('SUCCESS')
      expect(config.exitCode).toBe(0)
      const rules = await execa('promtool', ['check', 'rules', path('rules.yml')], { reject: false })
      expect(rules.stdout).toContain('SUCCESS: 16 rules found')
      expect(rules.exitCode).toBe(0)
    })

    it('accepts the TLS variant, whose certificate files exist', async () => {
      await writeSelfSignedCerts(home.certsDir)
      const files = planMonitoring(home, parseConfig({ server: { mtls: true } }))
      await writeFile(join(dir, 'prometheus-tls.yml'), files[0].data)
      await writeFile(join(dir, 'rules.yml'), files[1].data)
      const result = await execa('promtool', ['check', 'config', join(dir, 'prometheus-tls.yml')], {
        reject: false,
      })
      expect(result.exitCode, result.stderr).toBe(0)
    })
    // Each rule's promtool unit tests: alert-rules.test.ts.
  })

  describe.skipIf(!hasTool('amtool'))('amtool', () => {
    it('accepts alertmanager.yml', async () => {
      const result = await execa('amtool', ['check-config', path('alertmanager.yml')], { reject: false })
      expect(result.stdout).toContain('SUCCESS')
      expect(result.exitCode).toBe(0)
    })
  })
})
