import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAccount } from '../../src/core/identity/accounts.js'
import { CLI_ACTOR, createKey } from '../../src/core/identity/api-keys.js'
import {
  bearer,
  type Daemon,
  daemon,
  type IdentityWorld,
  identityWorld,
} from '../core/identity/identity-harness.js'

/**
 * Every route of /openapi.json fuzzed from its own schemas: values that fit, values that almost fit
 * (a field dropped, a wrong type, an extreme number, a hostile string) and values that have nothing to
 * do with the schema, with an admin key, an infer key, a forged token or none; plus the binary tensor
 * framing with lengths that lie. Whatever comes in, the daemon answers below 500 (503 only for a model
 * that is not loaded, which the fuzzer's own unload calls cause), within a deadline, and its memory
 * stays bounded. HELIX_FUZZ_CASES sets the number of cases (100,000 by default),
 * HELIX_FUZZ_SEED the seed; a failure prints the seed and the cases that broke.
 */

const CASES = Number(process.env.HELIX_FUZZ_CASES ?? 100_000)
const SEED = Number(process.env.HELIX_FUZZ_SEED ?? Date.now() % 2 ** 31)
const CASE_TIMEOUT_MS = 10_000

/** The live heap after a full garbage collection (what a leak would grow; RSS also keeps freed pages). */
async function liveHeap(): Promise<number> {
  const v8 = await import('node:v8')
  const vm = await import('node:vm')
  v8.setFlagsFromString('--expose_gc')
  ;(vm.runInNewContext('gc') as () => void)()
  return process.memoryUsage().heapUsed
}

type Schema = {
  type?: string | string[]
  properties?: Record<string, Schema>
  required?: string[]
  items?: Schema
  enum?: unknown[]
  const?: unknown
  anyOf?: Schema[]
  oneOf?: Schema[]
  format?: string
  minimum?: number
  maximum?: number
  minLength?: number
  maxLength?: number
  pattern?: string
}

interface Operation {
  method: string
  path: string
  params: { name: string; in: string; schema?: Schema }[]
  body?: Schema
}

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]
  const chance = (p: number) => next() < p
  return { next, int, pick, chance }
}
type Random = ReturnType<typeof prng>

const HOSTILE_STRINGS = [
  '',
  ' ',
  "' OR '1'='1' --",
  "Robert'); DROP TABLE users;--",
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  '../../../../etc/passwd',
  '..%2F..%2Fetc%2Fpasswd',
  'a\u0000b',
  'line\r\nSet-Cookie: x=1',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a Log4Shell probe, sent as text on purpose.
  '${jndi:ldap://127.0.0.1/a}',
  '{{7*7}}',
  '%s%s%s%n',
  '\uFFFF\uD800',
  '😀'.repeat(50),
  'A'.repeat(10_000),
  '__proto__',
  'constructor',
  'NaN',
  'Infinity',
  '-1',
  '1e309',
  'null',
  'admin',
  'infer,admin',
  'user@example.test',
]
const HOSTILE_NUMBERS = [
  0,
  -1,
  1,
  2 ** 31,
  -(2 ** 31),
  2 ** 53,
  -(2 ** 53),
  1e308,
  -1e308,
  0.5,
  1e-300,
  65_536,
]

/** Percent-encoding that survives lone surrogates (they become U+FFFD, as a browser would send them). */
const enc = (text: string) =>
  encodeURIComponent(
    text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD'),
  )

function randomString(r: Random): string {
  if (r.chance(0.6)) return r.pick(HOSTILE_STRINGS)
  const length = r.int(r.chance(0.9) ? 20 : 2000)
  let out = ''
  for (let i = 0; i < length; i++) out += String.fromCharCode(r.chance(0.9) ? 32 + r.int(95) : r.int(0x3000))
  return out
}

function randomJson(r: Random, depth = 0): unknown {
  const kind = r.int(depth > 4 ? 4 : 7)
  switch (kind) {
    case 0:
      return null
    case 1:
      return r.chance(0.5)
    case 2:
      return r.pick(HOSTILE_NUMBERS)
    case 3:
      return randomString(r)
    case 4:
      return Array.from({ length: r.int(5) }, () => randomJson(r, depth + 1))
    case 5: {
      const out: Record<string, unknown> = {}
      for (let i = 0; i < r.int(5); i++)
        out[r.chance(0.2) ? r.pick(HOSTILE_STRINGS) : `k${r.int(9)}`] = randomJson(r, depth + 1)
      return out
    }
    default: {
      // Deep nesting, in arrays or objects.
      let v: unknown = 1
      const levels = r.pick([20, 200, 800])
      for (let i = 0; i < levels; i++) v = r.chance(0.5) ? [v] : { a: v }
      return v
    }
  }
}

/** A value that fits `schema` (as far as a quick generator can tell). */
function fitting(r: Random, schema: Schema | undefined, depth = 0): unknown {
  if (!schema || depth > 6) return randomJson(r, 3)
  if (schema.const !== undefined) return schema.const
  if (schema.enum) return r.pick(schema.enum)
  const union = schema.anyOf ?? schema.oneOf
  if (union?.length) return fitting(r, r.pick(union), depth + 1)
  const type = Array.isArray(schema.type) ? r.pick(schema.type) : schema.type
  switch (type) {
    case 'string':
      if (schema.format === 'email') return `fuzz${r.int(1e6)}@example.test`
      if (schema.format === 'date-time') return new Date(Date.now() + r.int(1e9)).toISOString()
      return 'x'.repeat(Math.max(schema.minLength ?? 1, Math.min(schema.maxLength ?? 12, 12)))
    case 'integer':
    case 'number': {
      const low = schema.minimum ?? 0
      const high = schema.maximum ?? low + 100
      const v = low + r.next() * (high - low)
      return type === 'integer' ? Math.round(v) : v
    }
    case 'boolean':
      return r.chance(0.5)
    case 'null':
      return null
    case 'array':
      return Array.from({ length: 1 + r.int(3) }, () => fitting(r, schema.items, depth + 1))
    case 'object': {
      const out: Record<string, unknown> = {}
      for (const [key, sub] of Object.entries(schema.properties ?? {})) {
        if (schema.required?.includes(key) || r.chance(0.5)) out[key] = fitting(r, sub, depth + 1)
      }
      return out
    }
    default:
      return randomJson(r, 3)
  }
}

/** A fitting value with one thing wrong somewhere, or nothing to do with the schema at all. */
function almost(r: Random, schema: Schema | undefined): unknown {
  const mode = r.int(4)
  if (mode === 0) return randomJson(r)
  const value = fitting(r, schema)
  if (mode === 1 || value === null || typeof value !== 'object') return value
  const entries = Object.keys(value as object)
  if (entries.length === 0) return value
  const key = r.pick(entries)
  const target = value as Record<string, unknown>
  if (mode === 2) delete target[key]
  else target[key] = r.chance(0.5) ? randomJson(r) : r.pick([...HOSTILE_NUMBERS, ...HOSTILE_STRINGS])
  return value
}

function operations(spec: { paths: Record<string, Record<string, unknown>> }): Operation[] {
  const out: Operation[] = []
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const o = op as {
        parameters?: { name: string; in: string; schema?: Schema }[]
        requestBody?: { content?: Record<string, { schema?: Schema }> }
      }
      out.push({
        method: method.toUpperCase(),
        path,
        params: o.parameters ?? [],
        ...(o.requestBody?.content?.['application/json']?.schema
          ? { body: o.requestBody.content['application/json'].schema }
          : {}),
      })
    }
  }
  return out
}

describe('fuzzing every route from its schema', () => {
  let world: IdentityWorld
  let d: Daemon
  let spec: { paths: Record<string, Record<string, unknown>> }
  const tokens: string[] = []

  beforeAll(async () => {
    world = await identityWorld()
    d = await daemon(world, {
      rate_limit: { per_key_per_min: 1_000_000_000, per_ip_per_min: 1_000_000_000, auth_per_ip_per_min: 30 },
    })
    const deps = d.identity.deps
    const { user } = await createAccount(deps, {
      email: 'fuzz.admin@example.test',
      password: 'correct horse battery staple',
      role: 'admin',
    })
    tokens.push(
      (await createKey(deps, CLI_ACTOR, { name: 'fuzz-admin', scopes: ['admin'], userId: user.id })).key,
    )
    tokens.push((await createKey(deps, CLI_ACTOR, { name: 'fuzz-infer', scopes: ['infer'] })).key)
    spec = (await d.app.inject({ method: 'GET', url: '/openapi.json' })).json()
  }, 120_000)
  afterAll(async () => {
    await d?.close()
    await world?.teardown()
  })

  it(`${CASES} cases: no 5xx, no hang, bounded memory (seed printed on failure)`, async () => {
    const r = prng(SEED)
    const ops = operations(spec)
    expect(ops.length).toBeGreaterThan(20)
    const broken: string[] = []
    const statuses = new Map<number, number>()
    const rssStart = process.memoryUsage().rss
    let rssPeak = rssStart
    const heapStart = await liveHeap()
    for (let i = 0; i < CASES; i++) {
      const op = r.pick(ops)
      let url = op.path.replace(/\{(\w+)\}/g, (_, name: string) => {
        const known =
          name === 'model' && r.chance(0.4) ? 'add' : name === 'version' && r.chance(0.5) ? '1' : undefined
        return enc(known ?? (r.chance(0.7) ? randomString(r) : String(r.pick(HOSTILE_NUMBERS))))
      })
      const query = op.params
        .filter((p) => p.in === 'query' && r.chance(0.6))
        .map((p) => `${enc(p.name)}=${enc(String(r.chance(0.5) ? fitting(r, p.schema) : randomString(r)))}`)
      if (query.length) url += `?${query.join('&')}`
      const who = r.int(10)
      const headers: Record<string, string> =
        who < 6
          ? bearer(tokens[0])
          : who < 8
            ? bearer(tokens[1])
            : who < 9
              ? bearer(`hx_${randomString(r).replace(/[^\x21-\x7e]/g, 'a')}`)
              : {}
      let payload: string | Buffer | undefined
      if (op.method !== 'GET' && op.method !== 'DELETE' ? true : r.chance(0.1)) {
        const framing = r.int(10)
        if (framing === 0 && op.path.endsWith('/infer')) {
          // Binary tensor extension: a JSON header whose length the request may lie about.
          const header = Buffer.from(JSON.stringify(almost(r, op.body)))
          const binary = Buffer.alloc(r.int(64), r.int(256))
          const lie = r.pick([
            header.length,
            header.length + 1,
            -1,
            0,
            2 ** 40,
            header.length + binary.length + 5,
            Number.NaN,
          ])
          headers['content-type'] = r.pick(['application/octet-stream', 'application/json'])
          headers['inference-header-content-length'] = String(lie)
          payload = Buffer.concat([header, binary]).subarray(
            0,
            r.chance(0.3) ? r.int(header.length + 1) : undefined,
          )
        } else if (framing === 3 && r.chance(0.2)) {
          // A depth bomb as text: far deeper than anything JSON.stringify would write.
          const levels = r.pick([10_000, 100_000])
          headers['content-type'] = 'application/json'
          payload = r.chance(0.5)
            ? `${'['.repeat(levels)}${']'.repeat(levels)}`
            : `{"inputs":[{"name":"a","shape":[1,4],"datatype":"FP32","data":${'['.repeat(levels)}1${']'.repeat(levels)}}]}`
        } else if (framing === 1) {
          headers['content-type'] = r.pick([
            'text/plain',
            'application/octet-stream',
            'application/x-www-form-urlencoded',
            'application/json; charset=latin1',
          ])
          payload = Buffer.from(randomString(r))
        } else {
          headers['content-type'] = 'application/json'
          const value = framing < 7 ? almost(r, op.body) : fitting(r, op.body)
          payload = framing === 2 ? JSON.stringify(value).slice(0, r.int(40)) : JSON.stringify(value)
        }
      }
      // The deadline's timer is cleared at once: a pending one would keep the answer (and its body)
      // reachable through the race for its whole 10 s.
      let deadline: NodeJS.Timeout | undefined
      const answer = await Promise.race([
        d.app.inject({
          method: op.method as 'GET',
          url,
          headers,
          ...(payload !== undefined ? { payload } : {}),
        }),
        new Promise<'hang'>((resolve) => {
          deadline = setTimeout(() => resolve('hang'), CASE_TIMEOUT_MS)
        }),
      ])
      clearTimeout(deadline)
      const status = answer === 'hang' ? 0 : answer.statusCode
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      // 503 is the protocol's answer for a model that is not loaded (the fuzzer unloads models too).
      const legit503 = answer !== 'hang' && status === 503 && /is not ready/.test(answer.body)
      if (answer === 'hang' || (status >= 500 && !legit503)) {
        const what = answer === 'hang' ? 'no answer in 10 s' : `${status} ${answer.body.slice(0, 200)}`
        broken.push(
          `#${i} ${op.method} ${url.slice(0, 200)} body=${String(payload ?? '').slice(0, 200)} → ${what}`,
        )
        if (broken.length >= 20) break
      }
      if (i % 1000 === 0) {
        rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
        // The harness keeps every log line for its own checks; the fuzzer has no use for them.
        d.logs.lines.length = 0
      }
    }
    const summary = [...statuses.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ')
    const heapGrowth = (await liveHeap()) - heapStart
    console.log(
      `fuzz seed ${SEED}, ${CASES} cases over ${ops.length} operations; statuses ${summary}; live heap +${Math.round(heapGrowth / 2 ** 20)} MiB, peak RSS +${Math.round((rssPeak - rssStart) / 2 ** 20)} MiB`,
    )
    expect(broken, `seed ${SEED} (HELIX_FUZZ_SEED=${SEED} replays it)\n${broken.join('\n')}`).toEqual([])
    // A leak of a few KB per request would pass this well before 100,000 cases.
    expect(heapGrowth, 'live heap growth').toBeLessThan(128 * 2 ** 20)
    expect((await d.app.inject({ method: 'GET', url: '/v2/health/ready' })).statusCode).toBe(200)
  }, 3_600_000)
})
