import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, parseDocument, stringify } from 'yaml'
import { DASHBOARD_PANELS } from '../../src/provision/render/monitoring-values.js'
import { type FakeNvidiaSmi, fakeNvidiaSmi, NVIDIA_SMI_FIXTURES } from '../core/gpu/fake-nvidia-smi.js'
import { type IdentityWorld, INFER_BODY, identityWorld } from '../core/identity/identity-harness.js'
import { HELIX_BIN, runHelix, runHelixJson } from '../helpers/cli.js'
import { freePortPair } from '../helpers/ports.js'
import { hasTool } from '../helpers/tools.js'

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

interface QueryAnswer {
  status: string
  error?: string
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }
}

/**
 * Issue 16's dashboard check: a real `helix serve` (auth on, embedded PostgreSQL, the fake nvidia-smi
 * printing recorded H100 output on PATH) under a little load, scraped by the Debian Prometheus on the
 * rendered prometheus.yml through server.metrics_port; every PromQL of every Grafana panel must be
 * valid and return data unless the panel says why it may be empty here.
 */
describe.skipIf(!hasTool('prometheus'))(
  'Grafana dashboard queries against Prometheus and a live daemon',
  () => {
    let world: IdentityWorld
    let fake: FakeNvidiaSmi
    let daemon: ResultPromise | undefined
    let prometheus: ResultPromise | undefined
    let daemonOutput = ''
    let url: string
    let metricsPort: number
    let promUrl: string

    const query = async (expr: string): Promise<QueryAnswer> => {
      const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`)
      return (await res.json()) as QueryAnswer
    }

    beforeAll(async () => {
      world = await identityWorld()
      const home = world.database.home.root
      fake = await fakeNvidiaSmi('h100-x2.csv')
      const port = await freePortPair()
      metricsPort = await freePortPair()
      const promPort = await freePortPair()
      url = `http://127.0.0.1:${port}`
      promUrl = `http://127.0.0.1:${promPort}`
      const config = parseDocument(await readFile(join(home, 'helix.yaml'), 'utf8').catch(() => ''))
      config.setIn(['nginx', 'upstreams'], [`127.0.0.1:${port}`])
      config.setIn(['server', 'metrics_port'], metricsPort)
      config.setIn(['monitoring', 'gpu_interval_ms'], 500)
      config.setIn(['rate_limit', 'per_key_per_min'], 100_000)
      await writeFile(join(home, 'helix.yaml'), config.toString())

      daemon = execa('node', [HELIX_BIN, 'serve', '--dir', home, '--port', String(port), '--no-grpc'], {
        reject: false,
        env: {
          ...world.database.env,
          ...fake.env,
          FAKE_NVIDIA_SMI_STATS_OUTPUT: join(NVIDIA_SMI_FIXTURES, 'h100-x2-full-query.csv'),
        },
        stdin: 'ignore',
        all: true,
      })
      daemon.all?.on('data', (c: Buffer) => {
        daemonOutput += c
      })
      await waitFor('helix serve to be ready', async () =>
        (await fetch(`${url}/v2/health/ready`)).ok ? true : undefined,
      ).catch((error) => {
        throw new Error(`${error.message}\n${daemonOutput}`)
      })

      const render = await runHelix(['render', 'monitoring', '--dir', home], { env: world.database.env })
      expect(render.exitCode, render.stderr).toBe(0)
      const monitoring = join(home, 'monitoring')
      const prom = parse(await readFile(join(monitoring, 'prometheus.yml'), 'utf8'))
      expect(prom.scrape_configs[0].static_configs[0].targets).toEqual([`127.0.0.1:${metricsPort}`])
      prom.global = { scrape_interval: '1s', evaluation_interval: '1s' }
      await writeFile(join(monitoring, 'prometheus.yml'), stringify(prom))
      await mkdir(join(home, 'data', 'prom'), { recursive: true })
      prometheus = execa(
        'prometheus',
        [
          `--config.file=${join(monitoring, 'prometheus.yml')}`,
          `--storage.tsdb.path=${join(home, 'data', 'prom')}`,
          `--web.listen-address=127.0.0.1:${promPort}`,
        ],
        { reject: false, cwd: monitoring, stdin: 'ignore', all: true },
      )

      // A little load: an infer key, a key with a quota, a failing request, a refused key.
      const env = world.database.env
      const load = await runHelixJson<{ id: string; key: string }>(
        ['apikeys', 'create', '--name', 'load', '--scopes', 'infer', '--dir', home],
        { env },
      )
      const quota = await runHelixJson<{ id: string; key: string }>(
        [
          'apikeys',
          'create',
          '--name',
          'quota',
          '--scopes',
          'infer',
          '--quota-requests',
          '1000',
          '--quota-period',
          'day',
          '--dir',
          home,
        ],
        { env },
      )
      const infer = (key: string, body: unknown = INFER_BODY) =>
        fetch(`${url}/v2/models/add/infer`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      for (let round = 0; round < 8; round++) {
        for (let i = 0; i < 5; i++) expect((await infer(load.key)).status).toBe(200)
        expect((await infer(quota.key)).status).toBe(200)
        expect((await infer(load.key, { inputs: [] })).status).toBe(400)
        await new Promise((r) => setTimeout(r, 400))
      }
      await waitFor('three scrapes of the daemon', async () => {
        const answer = await query('count_over_time(up{job="helix"}[1m]) >= 3')
        return answer.data?.result.length ? true : undefined
      })
    }, 180_000)

    afterAll(async () => {
      prometheus?.kill('SIGTERM')
      await prometheus
      daemon?.kill('SIGTERM')
      await daemon
      await fake?.cleanup()
      await world?.teardown()
    })

    it('/metrics on the main port needs the metrics scope; the loopback metrics port shows the GPU series', async () => {
      expect((await fetch(`${url}/metrics`)).status).toBe(401)
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
      expect(text).toMatch(/^helix_gpu_up 1$/m)
      expect(text).toMatch(/^helix_gpu_count 2$/m)
      expect(text).toContain(
        'helix_gpu_memory_used_bytes{gpu="1",uuid="GPU-3c1e0a2d-9b47-5e1f-a2c8-41d7e9f06b12"',
      )
      expect(text).toMatch(/^helix_gpu_power_watts\{gpu="0",.*\} 684\.69$/m)
      expect(text).toMatch(/^helix_db_up 1$/m)
      expect(text).toContain('helix_key_requests_total{key_id="')
    })

    it('every panel query is valid PromQL and returns data unless the panel says why it may not', async () => {
      const empty: string[] = []
      for (const panel of DASHBOARD_PANELS) {
        let rows = 0
        for (const target of panel.targets) {
          const answer = await query(target.expr)
          expect(answer.status, `${panel.title}: ${target.expr}: ${answer.error}`).toBe('success')
          rows += answer.data?.result.length ?? 0
        }
        if (rows === 0 && !panel.mayBeEmpty) empty.push(panel.title)
      }
      expect(empty, `panels without data:\n${daemonOutput.slice(-2000)}`).toEqual([])
      // The GPU panels had data from the recorded H100 output.
      const gpus = await query('helix_gpu_memory_used_bytes / helix_gpu_memory_total_bytes')
      expect(gpus.data?.result.map((r) => r.metric.gpu).sort()).toEqual(['0', '1'])
    })
  },
)
