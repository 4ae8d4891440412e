import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { planMonitoring } from '../../../src/provision/render/monitoring-values.js'
import { rerenderArtifact } from '../../../src/provision/render/render.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'

const SLACK_URL = 'https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX'
const ROUTING_KEY = 'R0UT1NGKEYSECRET0123456789abcdef'

interface Receiver {
  name: string
  email_configs?: { to: string; send_resolved: boolean }[]
  slack_configs?: { api_url?: string; api_url_file?: string; channel?: string; send_resolved: boolean }[]
  pagerduty_configs?: {
    routing_key?: string
    routing_key_file?: string
    url?: string
    send_resolved: boolean
  }[]
}

describe('alertmanager.yml from alerts.* of helix.yaml', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let home: HelixHome
  let files: { slack: string; pagerduty: string; password: string }

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    home = new HelixHome(join(dir, 'h'))
    files = { slack: join(dir, 'slack-url'), pagerduty: join(dir, 'pd-key'), password: join(dir, 'smtp-pw') }
    await writeFile(files.slack, `${SLACK_URL}\n`, { mode: 0o600 })
    await writeFile(files.pagerduty, `${ROUTING_KEY}\n`, { mode: 0o600 })
    await writeFile(files.password, 'hunter2\n', { mode: 0o600 })
  })
  afterAll(() => cleanup())

  const render = (alerts: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
    const file = planMonitoring(
      home,
      parseConfig({ admin_email: 'admin@example.com', alerts, ...extra }),
    ).find((f) => f.path.endsWith('alertmanager.yml'))
    if (!file) throw new Error('no alertmanager.yml rendered')
    return { ...file, config: parse(file.data) }
  }
  const receiver = (config: { receivers: Receiver[] }, name: string) =>
    config.receivers.find((r) => r.name === name) as Receiver

  it('with nothing configured, every alert goes by e-mail to admin_email, resolved ones too', () => {
    const { config, mode } = render({})
    expect(config.route.receiver).toBe('helix-warning')
    expect(config.route.routes).toEqual([
      expect.objectContaining({ matchers: ['severity="critical"'], receiver: 'helix-critical' }),
    ])
    for (const name of ['helix-warning', 'helix-critical'])
      expect(receiver(config, name)).toEqual({
        name,
        email_configs: [{ to: 'admin@example.com', send_resolved: true }],
      })
    expect(config.global).toMatchObject({
      smtp_smarthost: 'localhost:25',
      smtp_from: 'alertmanager@localhost',
    })
    expect(mode).toBeUndefined()
  })

  it('critical pages PagerDuty and goes to Slack and e-mail; warnings go to Slack and e-mail only', () => {
    const { config } = render({
      email: ['ops@example.com', 'oncall@example.com'],
      slack_webhook_url_file: files.slack,
      slack_channel: '#alerts',
      pagerduty_routing_key_file: files.pagerduty,
      pagerduty_url: 'http://127.0.0.1:9999/v2/enqueue',
    })
    const warning = receiver(config, 'helix-warning')
    const critical = receiver(config, 'helix-critical')
    expect(warning.pagerduty_configs).toBeUndefined()
    expect(warning.email_configs).toEqual([
      { to: 'ops@example.com, oncall@example.com', send_resolved: true },
    ])
    expect(warning.slack_configs?.[0]).toMatchObject({
      api_url_file: files.slack,
      channel: '#alerts',
      send_resolved: true,
    })
    expect(critical.pagerduty_configs?.[0]).toMatchObject({
      routing_key_file: files.pagerduty,
      url: 'http://127.0.0.1:9999/v2/enqueue',
      send_resolved: true,
    })
    expect(critical.slack_configs).toHaveLength(1)
    expect(critical.email_configs).toHaveLength(1)
  })

  it('never copies a secret given as a file into the YAML; inline secrets make the file 0600', () => {
    const fromFiles = render({
      slack_webhook_url_file: files.slack,
      pagerduty_routing_key_file: files.pagerduty,
      smtp: { auth_username: 'alerts', auth_password_file: files.password },
    })
    expect(fromFiles.data).not.toContain(SLACK_URL)
    expect(fromFiles.data).not.toContain(ROUTING_KEY)
    expect(fromFiles.data).not.toContain('hunter2')
    expect(fromFiles.config.global).toMatchObject({
      smtp_auth_username: 'alerts',
      smtp_auth_password_file: files.password,
    })
    expect(fromFiles.mode).toBeUndefined()
    const inline = render({ slack_webhook_url: SLACK_URL, pagerduty_routing_key: ROUTING_KEY })
    expect(receiver(inline.config, 'helix-warning').slack_configs?.[0].api_url).toBe(SLACK_URL)
    expect(receiver(inline.config, 'helix-critical').pagerduty_configs?.[0].routing_key).toBe(ROUTING_KEY)
    expect(inline.mode).toBe(0o600)
  })

  it('writes alertmanager.yml with inline secrets readable by its owner only', async () => {
    const config = parseConfig({ alerts: { slack_webhook_url: SLACK_URL } })
    await rerenderArtifact(home, config, 'monitoring')
    expect((await stat(join(home.monitoringDir, 'alertmanager.yml'))).mode & 0o777).toBe(0o600)
  })

  it('with Slack set and no alerts.email, nothing goes by e-mail', () => {
    const { config } = render({ slack_webhook_url_file: files.slack })
    expect(receiver(config, 'helix-warning').email_configs).toBeUndefined()
    expect(receiver(config, 'helix-critical').email_configs).toBeUndefined()
  })

  it.each([
    [{ slack_webhook_url: 'not a url' }, /alerts\.slack_webhook_url in helix\.yaml is not an http\(s\) URL/],
    [{ slack_webhook_url: 'ftp://hooks.example.com/x' }, /not an http\(s\) URL/],
    [
      { pagerduty_routing_key: ROUTING_KEY, pagerduty_url: 'nope' },
      /alerts\.pagerduty_url .* not an http\(s\) URL/,
    ],
    [
      { slack_webhook_url_file: '/nonexistent/slack-url' },
      /alerts\.slack_webhook_url_file .* \/nonexistent\/slack-url, which does not exist/,
    ],
    [
      { pagerduty_routing_key_file: 'secrets/pd' },
      /alerts\.pagerduty_routing_key_file .*secrets\/pd, which does not exist/,
    ],
    [{ slack_webhook_url: SLACK_URL, slack_webhook_url_file: '/x' }, /both set/],
    [{ pagerduty_routing_key: 'has space' }, /not a PagerDuty routing key/],
    [{ email: ['not-an-address'] }, /alerts\.email 'not-an-address' in helix\.yaml is not an e-mail address/],
    [
      { smtp: { smarthost: 'mail.example.com' } },
      /alerts\.smtp\.smarthost 'mail\.example\.com' .* not host:port/,
    ],
    [{ smtp: { auth_username: 'u' } }, /go together/],
  ])('refuses %j with a clear error', (alerts, message) => {
    expect(() => render(alerts)).toThrow(message)
  })

  describe.skipIf(!hasTool('amtool'))('amtool check-config', () => {
    const channels = ['email', 'slack', 'pagerduty'] as const
    const combos = Array.from({ length: 8 }, (_, bits) => channels.filter((_, i) => bits & (1 << i)))
    it.each(combos.flatMap((c) => [[c, 'file'] as const, [c, 'inline'] as const]))(
      'accepts %j with secrets %s',
      async (chosen, how) => {
        const alerts: Record<string, unknown> = {}
        if (chosen.includes('email')) alerts.email = ['ops@example.com']
        if (chosen.includes('slack'))
          alerts[how === 'file' ? 'slack_webhook_url_file' : 'slack_webhook_url'] =
            how === 'file' ? files.slack : SLACK_URL
        if (chosen.includes('pagerduty'))
          alerts[how === 'file' ? 'pagerduty_routing_key_file' : 'pagerduty_routing_key'] =
            how === 'file' ? files.pagerduty : ROUTING_KEY
        if (how === 'file') alerts.smtp = { auth_username: 'alerts', auth_password_file: files.password }
        const { data } = render(alerts)
        const path = join(dir, `am-${chosen.join('-') || 'none'}-${how}.yml`)
        await writeFile(path, data)
        const result = await execa('amtool', ['check-config', path], { reject: false })
        expect(result.exitCode, result.stdout + result.stderr).toBe(0)
        expect(result.stdout).toContain('SUCCESS')
        expect(result.stdout).toMatch(/Found:\s+- global config\s+- route/)
      },
    )
  })
})
