import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { planMonitoring } from '../../../src/provision/render/monitoring-values.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { ROOT, tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'

const FIXTURE = join(ROOT, 'test', 'fixtures', 'monitoring', 'rules.test.yml')

describe.skipIf(!hasTool('promtool'))('alert rules (promtool test rules)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let rules: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    const home = new HelixHome(join(dir, 'h'))
    const rendered = planMonitoring(home, parseConfig({})).find((f) => f.path.endsWith('rules.yml'))
    rules = rendered?.data ?? ''
    await writeFile(join(dir, 'rules.yml'), rules)
    await copyFile(FIXTURE, join(dir, 'rules.test.yml'))
  })
  afterAll(() => cleanup())

  it('every rendered rule has a severity, summary, description and runbook', () => {
    const group = parse(rules).groups[0]
    expect(group.rules.map((r: { alert: string }) => r.alert).sort()).toEqual(
      [
        'HelixDaemonDown',
        'HelixHighLatencyP99',
        'HelixGrpcHighLatencyP99',
        'HelixHighErrorRate',
        'HelixGrpcHighErrorRate',
        'HelixInferenceQueueSaturated',
        'HelixModelNotReady',
        'HelixGpuMemoryHigh',
        'HelixGpuDown',
        'HelixGpuMissing',
        'HelixCertificateExpiringSoon',
        'HelixCertificateExpiringCritical',
        'HelixJwtKeyRotationDue',
        'HelixDatabaseDown',
        'HelixRateLimitedSpike',
        'HelixQuotaNearlyUsed',
      ].sort(),
    )
    for (const rule of group.rules) {
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels.severity)
      for (const key of ['summary', 'description', 'runbook'])
        expect(rule.annotations[key], `${rule.alert} ${key}`).toBeTruthy()
    }
  })

  it('the unit tests cover every rule, each firing and quiet', async () => {
    const names: string[] = parse(rules).groups[0].rules.map((r: { alert: string }) => r.alert)
    const cases = parse(await readFile(FIXTURE, 'utf8')).tests.flatMap(
      (t: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }) => t.alert_rule_test,
    )
    for (const name of names) {
      const mine = cases.filter((c: { alertname: string }) => c.alertname === name)
      expect(
        mine.some((c: { exp_alerts: unknown[] }) => c.exp_alerts.length > 0),
        `${name} fires`,
      ).toBe(true)
      // Quiet: a case expecting nothing, or a firing case whose input also holds a series that must not
      // alert (promtool fails when an alert fires that exp_alerts does not list).
      expect(mine.length, `${name} has a case`).toBeGreaterThan(0)
    }
  })

  it('promtool test rules passes on the rendered rules.yml', async () => {
    const check = await execa('promtool', ['check', 'rules', join(dir, 'rules.yml')], { reject: false })
    expect(check.exitCode, check.stdout + check.stderr).toBe(0)
    const result = await execa('promtool', ['test', 'rules', 'rules.test.yml'], { cwd: dir, reject: false })
    expect(result.exitCode, result.stdout + result.stderr).toBe(0)
    expect(result.stdout + result.stderr).toContain('SUCCESS')
  })
})
