import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
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
      expect(rules.stdout).toContain('SUCCESS: 6 rules found')
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

    it('fires each alert on the series that should trigger it (promtool test rules)', async () => {
      const instance = UPSTREAMS[0]
      const tests = {
        rule_files: [path('rules.yml')],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [
              { series: `up{job="helix",instance="${instance}"}`, values: '0x20' },
              { series: `up{job="helix",instance="${UPSTREAMS[1]}"}`, values: '1x20' },
              { series: 'helix_inference_queue_depth{model="ocr"}', values: '95x20' },
              { series: 'helix_inference_queue_capacity{model="ocr"}', values: '100x20' },
              { series: 'helix_inference_queue_depth{model="calm"}', values: '1x20' },
              { series: 'helix_inference_queue_capacity{model="calm"}', values: '100x20' },
              { series: 'helix_cert_expiry_seconds{cert="server"}', values: '864000x20' },
              { series: 'helix_cert_expiry_seconds{cert="ca"}', values: '300000000x20' },
              { series: 'helix_request_duration_seconds_count{status_code="500"}', values: '0+60x20' },
              { series: 'helix_request_duration_seconds_count{status_code="200"}', values: '0+60x20' },
              // Every request takes between 0.1 and 1 s: p99 interpolates to 0.991 s.
              { series: 'helix_request_duration_seconds_bucket{le="0.1"}', values: '0x20' },
              { series: 'helix_request_duration_seconds_bucket{le="1"}', values: '0+60x20' },
              { series: 'helix_request_duration_seconds_bucket{le="+Inf"}', values: '0+60x20' },
            ],
            alert_rule_test: [
              {
                eval_time: '2m',
                alertname: 'HelixDaemonDown',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'critical', job: 'helix', instance },
                    exp_annotations: {
                      summary: `helix daemon ${instance} is down`,
                      description: `Prometheus has not been able to scrape ${instance} for a minute; nginx sends its traffic to the other instances.`,
                    },
                  },
                ],
              },
              {
                eval_time: '10m',
                alertname: 'HelixInferenceQueueSaturated',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'warning', model: 'ocr' },
                    exp_annotations: {
                      summary: 'inference queue of ocr is over 90% full',
                      description:
                        'Requests for ocr will soon get 429: add instances or GPUs, or raise max_batch_size.',
                    },
                  },
                ],
              },
              {
                eval_time: '10m',
                alertname: 'HelixHighErrorRate',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'critical' },
                    exp_annotations: {
                      summary: 'more than 5% of helix requests fail with 5xx',
                      description: '50% of requests answered 5xx over the last 5 minutes.',
                    },
                  },
                ],
              },
              {
                eval_time: '1m',
                alertname: 'HelixCertificateExpiringSoon',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'warning', cert: 'server' },
                    exp_annotations: {
                      summary: 'helix server certificate expires in under 30 days',
                      description: 'It expires in 10d 0h 0m 0s. Run `helix certs rotate` and reload nginx.',
                    },
                  },
                ],
              },
              { eval_time: '1m', alertname: 'HelixCertificateExpiringCritical', exp_alerts: [] },
              // Pending for its first 10 minutes, then firing.
              { eval_time: '5m', alertname: 'HelixHighLatencyP99', exp_alerts: [] },
              {
                eval_time: '15m',
                alertname: 'HelixHighLatencyP99',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'warning' },
                    exp_annotations: {
                      summary: 'helix p99 latency above 0.5 s',
                      description: 'The 99th percentile of request duration has been 991ms for 10 minutes.',
                    },
                  },
                ],
              },
            ],
          },
        ],
      }
      const file = join(dir, 'rules.test.yml')
      await writeFile(file, stringify(tests))
      const result = await execa('promtool', ['test', 'rules', file], { reject: false })
      expect(result.stdout + result.stderr).toContain('SUCCESS')
      expect(result.exitCode, result.stdout + result.stderr).toBe(0)
    })
  })

  describe.skipIf(!hasTool('amtool'))('amtool', () => {
    it('accepts alertmanager.yml', async () => {
      const result = await execa('amtool', ['check-config', path('alertmanager.yml')], { reject: false })
      expect(result.stdout).toContain('SUCCESS')
      expect(result.exitCode).toBe(0)
    })
  })
})
