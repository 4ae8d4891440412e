// Auth overhead (issue 6): the same daemon build, the same model and load, with auth on (Bearer API
// key: checksum, SHA-256, one indexed Postgres lookup, limiter, usage/request-log writes after the
// answer) and with auth.enabled=false. Both apps run in this process over loopback against one
// embedded PostgreSQL; rounds alternate so a noisy machine slows both alike. Target: under 5% slower.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHttpLoad } from './lib/http-load.js'
import { rate } from './lib/measure.js'
import { ROOT } from './support/processes.js'

const dist = (p) => import(join(ROOT, 'dist', p))
const { buildApp } = await dist('http/app.js')
const { createIdentity } = await dist('core/identity/identity.js')
const { httpAuthentication } = await dist('http/identity.js')
const { CLI_ACTOR, createKey } = await dist('core/identity/api-keys.js')
const { createModelService } = await dist('core/infer/model-service.js')
const { startDatabase, stopDatabase } = await dist('provision/postgres/database.js')
const { connect } = await dist('state/db/connect.js')
const { migrate } = await dist('state/db/migrator.js')
const { ensureJwtKeys } = await dist('provision/jwt/jwt-keys.js')
const { parseConfig } = await dist('shared/config.js')
const { HelixHome } = await dist('shared/home.js')
const { writeFile, mkdir, copyFile } = await import('node:fs/promises')

const CONCURRENCY = 16
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 2000)
const TARGET = 0.95
const MODEL = (await dist('ops/demo-model.js')).demoModelPath()

const dir = await mkdtemp(join(tmpdir(), 'helix-bench-auth-'))
const home = new HelixHome(dir)
await mkdir(join(dir, 'models', 'cls', '1'), { recursive: true })
await copyFile(MODEL, join(dir, 'models', 'cls', '1', 'model.onnx'))
await writeFile(join(dir, 'models', 'cls', 'config.yaml'), 'max_batch_size: 16\nmax_queue_delay_ms: 2\n')
const limits = { per_key_per_min: 10_000_000, per_ip_per_min: 10_000_000 }
const base = parseConfig({ rate_limit: limits })
await startDatabase(home, base)
const db = await connect(home, base)
await migrate(db)
await ensureJwtKeys(home, base)

async function serve(authEnabled) {
  const config = parseConfig({ rate_limit: limits, auth: { enabled: authEnabled } })
  const service = await createModelService({ repositoryDir: join(dir, 'models'), defaultDevice: 'cpu' })
  const identity = await createIdentity({ home, config, db })
  const app = await buildApp({ service, auth: httpAuthentication(identity) })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  if (authEnabled) console.log(`API key cache: ${identity.deps.apiKeyCache?.active ? 'on' : 'off'}`)
  return {
    url,
    app,
    close: async () => {
      await app.close()
      await identity.close()
      await service.close()
    },
  }
}

const item = Buffer.from(new Float32Array(3 * 48 * 192).map(() => Math.random()).buffer)
const header = Buffer.from(
  JSON.stringify({
    inputs: [
      { name: 'x', datatype: 'FP32', shape: [1, 3, 48, 192], parameters: { binary_data_size: item.length } },
    ],
  }),
)
const body = Buffer.concat([header, item])

/**
 * The load for one app, from a worker thread (helix bench's HTTP/1.1 lanes): a client on the
 * apps' own event loop would charge its work to whichever app it measures.
 */
async function runner(url, key) {
  const load = await startHttpLoad({
    url,
    path: '/v2/models/cls/infer',
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
    body,
    concurrency: CONCURRENCY,
  })
  return {
    measure: async (ms) => {
      const r = await load.measure(ms, 500)
      if (r.errors) throw new Error(`${r.errors} failed requests, first: ${r.firstError}`)
      return r.itemsPerSecond
    },
    close: () => load.close(),
  }
}

const key = await createKey({ db, config: base }, CLI_ACTOR, { name: 'bench', scopes: ['infer'] })
const withAuth = await serve(true)
const withoutAuth = await serve(false)
const on = await runner(withAuth.url, key.key)
const off = await runner(withoutAuth.url)
const ratios = []
console.log(`PP-OCR cls, 1 item per request, concurrency ${CONCURRENCY}, ${ROUNDS} rounds of ${ROUND_MS} ms`)
// Both apps warm up (JIT, onnxruntime arenas, the key cache) before any round counts: a 500 ms
// warm-up per round left the app measured first in round 1 ~20 % behind.
for (const app of [on, off, on, off]) await app.measure(1000)
for (let round = 1; round <= ROUNDS; round++) {
  const order = round % 2 ? [on, off] : [off, on]
  const [first, second] = [await order[0].measure(ROUND_MS), await order[1].measure(ROUND_MS)]
  const [a, b] = order[0] === on ? [first, second] : [second, first]
  ratios.push(a / b)
  console.log(`  round ${round}: auth on ${rate(a)}, auth off ${rate(b)}, ratio ${(a / b).toFixed(3)}`)
}
const median = [...ratios].sort((x, y) => x - y)[Math.floor(ratios.length / 2)]

// The hook alone, without the network and the model: app.inject on a metadata route, in-process,
// alternating 2000-request batches; reports the added microseconds per request.
const reader = await createKey({ db, config: base }, CLI_ACTOR, {
  name: 'bench-read',
  scopes: ['models:read'],
})
const perRequest = async (app, headers) => {
  const t = performance.now()
  for (let i = 0; i < 2000; i++) await app.inject({ method: 'GET', url: '/v2/models/cls', headers })
  return ((performance.now() - t) * 1000) / 2000
}
const hook = { on: [], off: [] }
for (let round = 0; round < 5; round++) {
  hook.on.push(await perRequest(withAuth.app, { authorization: `Bearer ${reader.key}` }))
  hook.off.push(await perRequest(withoutAuth.app, {}))
}
const mid = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
console.log(
  `hook cost: ${mid(hook.on).toFixed(0)} µs/request with a key vs ${mid(hook.off).toFixed(0)} µs without (in-process inject, medians)`,
)
console.log(
  `auth on / auth off = ${median.toFixed(3)} (median; target ≥ ${TARGET}: ${median >= TARGET ? 'meets' : 'misses'})`,
)
await on.close()
await off.close()
await withAuth.close()
await withoutAuth.close()
await db.close()
await stopDatabase(home, base)
await rm(dir, { recursive: true, force: true })
