import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, parseDocument, stringify } from 'yaml'
import { type SmtpSink, startSmtpSink, textOf } from '../core/identity/mail/smtp-sink.js'
import { HELIX_BIN, runHelix, runHelixJson, tempDir } from '../helpers/cli.js'
import { CLS_MODEL_PATH } from '../helpers/onnx-models.js'
import { freePortPair } from '../helpers/ports.js'
import { hasTool } from '../helpers/tools.js'

/**
 * Issue 16's end-to-end alert: a real `helix serve`, the Debian Prometheus and Alertmanager started by
 * `helix monitor up` on the files `helix render monitoring` wrote, a model whose file breaks so that
 * helix_model_ready goes 0 and HelixModelNotReady fires (an unload on purpose stays quiet), and the
 * alert arriving — then resolving —
 * at a local SMTP server, a Slack-shaped webhook and a PagerDuty-shaped Events API v2 receiver.
 *
 * Only timings are changed in the rendered files (scrape and evaluation every second, the rule's
 * `for` and Alertmanager's group_wait/group_interval a second or two); every expression, route and
 * receiver is the rendered one.
 */

const ROUTING_KEY = 'e2eR0UT1NGKEY0123456789abcdef012'

interface Posted {
  path: string
  body: Record<string, unknown>
}

/** One HTTP server standing in for Slack's incoming webhook (/slack) and PagerDuty's Events API v2. */
async function startWebhookReceiver() {
  const posted: Posted[] = []
  const server: Server = createServer((req, res) => {
    let data = ''
    req.on('data', (c) => {
      data += c
    })
    req.on('end', () => {
      posted.push({ path: req.url ?? '', body: JSON.parse(data || '{}') })
      res.writeHead(req.url?.startsWith('/v2/enqueue') ? 202 : 200, { 'content-type': 'application/json' })
      res.end(req.url?.startsWith('/v2/enqueue') ? '{"status":"success","message":"Event processed"}' : 'ok')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}`,
    posted,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 60_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

const tools = ['prometheus', 'prometheus-alertmanager', 'amtool']
describe.skipIf(!tools.every(hasTool))('alerts end to end (helix serve, Prometheus, Alertmanager)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let home: string
  let smtp: SmtpSink
  let hooks: Awaited<ReturnType<typeof startWebhookReceiver>>
  let daemon: ResultPromise | undefined
  let daemonUrl: string
  let promUrl: string
  let daemonOutput = ''

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('helix-alerting-e2e-'))
    home = join(dir, 'h')
    smtp = await startSmtpSink()
    hooks = await startWebhookReceiver()
    const init = await runHelix(['init', '--dir', home])
    expect(init.exitCode, init.stderr).toBe(0)
    await mkdir(join(home, 'models', 'cls', '1'), { recursive: true })
    await copyFile(CLS_MODEL_PATH, join(home, 'models', 'cls', '1', 'model.onnx'))

    // Secrets as files, as the docs advise; the rendered alertmanager.yml names the files.
    const secrets = join(home, 'secrets')
    await mkdir(secrets, { mode: 0o700 })
    await writeFile(join(secrets, 'slack-webhook-url'), `${hooks.url}/slack/T000/B000/XXXX\n`, {
      mode: 0o600,
    })
    await writeFile(join(secrets, 'pagerduty-routing-key'), `${ROUTING_KEY}\n`, { mode: 0o600 })

    const port = await freePortPair()
    daemonUrl = `http://127.0.0.1:${port}`
    const config = parseDocument(await readFile(join(home, 'helix.yaml'), 'utf8'))
    config.setIn(['nginx', 'upstreams'], [`127.0.0.1:${port}`])
    config.setIn(['alerts'], {
      email: ['oncall@example.com'],
      smtp: { smarthost: new URL(smtp.url).host, require_tls: false },
      slack_webhook_url_file: 'secrets/slack-webhook-url',
      slack_channel: '#alerts',
      pagerduty_routing_key_file: 'secrets/pagerduty-routing-key',
      pagerduty_url: `${hooks.url}/v2/enqueue`,
    })
    await writeFile(join(home, 'helix.yaml'), config.toString())
    const render = await runHelix(['render', 'monitoring', '--dir', home])
    expect(render.exitCode, render.stderr).toBe(0)

    // Test timings only.
    const monitoring = join(home, 'monitoring')
    const prom = parse(await readFile(join(monitoring, 'prometheus.yml'), 'utf8'))
    prom.global = { scrape_interval: '1s', evaluation_interval: '1s' }
    await writeFile(join(monitoring, 'prometheus.yml'), stringify(prom))
    const rules = parse(await readFile(join(monitoring, 'rules.yml'), 'utf8'))
    const notReady = rules.groups[0].rules.find((r: { alert: string }) => r.alert === 'HelixModelNotReady')
    expect(notReady.expr).toBe(
      'helix_model_ready == 0 unless on (job, instance, model, version) helix_model_unloaded == 1',
    )
    notReady.for = '2s'
    await writeFile(join(monitoring, 'rules.yml'), stringify(rules))
    const am = parse(await readFile(join(monitoring, 'alertmanager.yml'), 'utf8'))
    Object.assign(am.route, { group_wait: '1s', group_interval: '1s' })
    await writeFile(join(monitoring, 'alertmanager.yml'), stringify(am))
    expect((await readFile(join(monitoring, 'alertmanager.yml'), 'utf8')).includes(ROUTING_KEY)).toBe(false)

    daemon = execa('node', [HELIX_BIN, 'serve', '--dir', home, '--port', String(port), '--no-auth'], {
      reject: false,
      env: { HELIX_DIR: undefined },
      stdin: 'ignore',
      all: true,
    })
    daemon.all?.on('data', (c: Buffer) => {
      daemonOutput += c
    })
    await waitFor(
      'helix serve to be ready',
      async () =>
        (await request(`${daemonUrl}/v2/health/ready`).catch(() => undefined))?.statusCode === 200 ||
        undefined,
    ).catch((error) => {
      throw new Error(`${error.message}\n${daemonOutput}`)
    })
  }, 120_000)

  afterAll(async () => {
    if (home) await runHelix(['monitor', 'down', '--dir', home])
    daemon?.kill('SIGTERM')
    await daemon
    await smtp?.stop()
    await hooks?.stop()
    await cleanup?.()
  }, 60_000)

  it('helix monitor up starts Prometheus and Alertmanager and prints their URLs', async () => {
    const [promPort, amPort] = [await freePortPair(), await freePortPair()]
    const up = await runHelix([
      'monitor',
      'up',
      '--dir',
      home,
      '--prometheus-port',
      String(promPort),
      '--alertmanager-port',
      String(amPort),
    ])
    expect(up.exitCode, up.stderr).toBe(0)
    expect(up.stdout).toContain(`Prometheus started: http://127.0.0.1:${promPort}`)
    expect(up.stdout).toContain(`Alertmanager started: http://127.0.0.1:${amPort}`)
    promUrl = `http://127.0.0.1:${promPort}`
    // Prometheus scrapes the daemon.
    await waitFor('Prometheus to scrape helix_model_ready', async () => {
      const { body } = await request(`${promUrl}/api/v1/query?query=helix_model_ready{model="cls"}`)
      const result = ((await body.json()) as { data: { result: { value: [number, string] }[] } }).data.result
      return result[0]?.value[1] === '1' || undefined
    })
    const again = await runHelix(['monitor', 'up', '--dir', home])
    expect(again.stdout).toContain('Prometheus already running')
  }, 90_000)

  it('a model that fails to load fires HelixModelNotReady at e-mail, Slack and PagerDuty, then resolves', async () => {
    const started = Date.now()
    // Unloading on purpose pages nobody: helix_model_unloaded marks it and the rule stays quiet.
    const unload = await request(`${daemonUrl}/v2/repository/models/cls/unload`, { method: 'POST' })
    expect(unload.statusCode).toBe(200)
    await waitFor('Prometheus to see the unload', async () => {
      const { body } = await request(`${promUrl}/api/v1/query?query=helix_model_unloaded{model="cls"}`)
      return ((await body.json()) as { data: { result: unknown[] } }).data.result.length === 1 || undefined
    })
    await new Promise((r) => setTimeout(r, 3000))
    const quiet = await request(`${promUrl}/api/v1/query?query=ALERTS{alertname="HelixModelNotReady"}`)
    expect(((await quiet.body.json()) as { data: { result: unknown[] } }).data.result).toEqual([])
    // A model file that breaks does page: the load fails and the version is UNAVAILABLE for a reason.
    const modelFile = join(home, 'models', 'cls', '1', 'model.onnx')
    const good = await readFile(modelFile)
    await writeFile(modelFile, 'not an onnx model')
    const failed = await request(`${daemonUrl}/v2/repository/models/cls/load`, { method: 'POST' })
    expect(failed.statusCode).toBe(500)
    await writeFile(modelFile, good)

    const isOurs = (p: Posted, prefix: string) =>
      p.path.startsWith(prefix) && JSON.stringify(p.body).includes('HelixModelNotReady')
    const slackFiring = await waitFor('the Slack message', () =>
      hooks.posted.find((p) => isOurs(p, '/slack/T000/B000/XXXX')),
    )
    const attachment = (slackFiring.body.attachments as { title: string; text: string }[])[0]
    expect(slackFiring.body.channel).toBe('#alerts')
    expect(attachment.title).toBe('[FIRING:1] HelixModelNotReady (critical)')
    expect(attachment.text).toContain('model cls version 1 is not ready')
    expect(attachment.text).toContain('Runbook: `helix models list`')

    const pdFiring = await waitFor('the PagerDuty event', () =>
      hooks.posted.find((p) => isOurs(p, '/v2/enqueue')),
    )
    expect(pdFiring.body).toMatchObject({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      payload: { severity: 'critical', summary: 'HelixModelNotReady: model cls version 1 is not ready' },
    })

    const mail = await smtp.next('oncall@example.com', 60_000)
    const text = textOf(mail.raw)
    expect(text).toMatch(/^Subject: \[FIRING:1\] HelixModelNotReady/m)
    expect(text).toContain('critical')
    expect(text).toContain('model cls version 1 is not ready')
    const firedMs = Date.now() - started

    const status = await runHelixJson<{ alerts: { name: string; severity: string; state: string }[] }>([
      'monitor',
      'status',
      '--dir',
      home,
    ])
    expect(status.alerts).toContainEqual(
      expect.objectContaining({ name: 'HelixModelNotReady', severity: 'critical', state: 'firing' }),
    )
    const human = await runHelix(['monitor', 'status', '--dir', home])
    expect(human.stdout).toMatch(/firing\s+critical\s+HelixModelNotReady model=cls version=1/)

    // Load it again: the alert resolves and every channel is told (send_resolved).
    const load = await request(`${daemonUrl}/v2/repository/models/cls/load`, { method: 'POST' })
    expect(load.statusCode).toBe(200)
    const title = (p: Posted) => (p.body.attachments as { title: string }[] | undefined)?.[0]?.title
    const slackResolved = await waitFor('the Slack resolved message', () =>
      hooks.posted.find((p) => p.path.startsWith('/slack/') && title(p)?.startsWith('[RESOLVED]')),
    )
    expect(title(slackResolved)).toBe('[RESOLVED] HelixModelNotReady (critical)')
    const pdResolved = await waitFor('the PagerDuty resolve event', () =>
      hooks.posted.find((p) => isOurs(p, '/v2/enqueue') && p.body.event_action === 'resolve'),
    )
    expect(pdResolved.body).toMatchObject({ routing_key: ROUTING_KEY, dedup_key: pdFiring.body.dedup_key })
    const resolvedMail = await smtp.next('oncall@example.com', 60_000)
    expect(textOf(resolvedMail.raw)).toMatch(/^Subject: \[RESOLVED\] HelixModelNotReady/m)
    console.log(
      `alert delivered ${firedMs} ms after the failed load, resolved ${Date.now() - started} ms after it`,
    )

    const after = await runHelixJson<{ alerts: { name: string }[] }>(['monitor', 'status', '--dir', home])
    expect(after.alerts.map((a) => a.name)).not.toContain('HelixModelNotReady')
  }, 150_000)

  it('helix monitor down stops both', async () => {
    const down = await runHelix(['monitor', 'down', '--dir', home])
    expect(down.stdout).toContain('Prometheus stopped')
    expect(down.stdout).toContain('Alertmanager stopped')
    await expect(request(`${promUrl}/-/ready`)).rejects.toThrow()
    const status = await runHelix(['monitor', 'status', '--dir', home])
    expect(status.stdout).toContain('not running')
  }, 60_000)
})
