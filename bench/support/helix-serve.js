// A real `helix serve` for the bench scripts, through the full stack: a fresh helix directory
// (`helix init`), the embedded PostgreSQL, migrations, an API key with the infer and models:read scopes, and the
// daemon with authentication and rate limiting on, served on an ephemeral loopback port.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseDocument } from 'yaml'
import { startDaemon } from '../lib/daemon.js'
import { HELIX_BIN, helixBench, runNode } from './processes.js'

/**
 * Rate limits far above what one machine can send, so the limiter runs on every request (its cost is
 * measured) without refusing any.
 */
const BENCH_LIMIT_PER_MIN = 100_000_000

/**
 * BENCH_TRACING=1 turns tracing on (sampling ratio BENCH_TRACING_RATIO, default 1) with the spans
 * sent to this OTLP/HTTP receiver, which reads and acknowledges them: the cost of tracing.
 */
async function otlpSink() {
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  server.unref()
  return `http://127.0.0.1:${server.address().port}/v1/traces`
}

export async function serveModels(models, { auth = true } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'helix-bench-'))
  // As root the embedded server runs as an unprivileged user, who must be able to reach its data.
  await chmod(dir, 0o755)
  await runNode([HELIX_BIN, 'init', '--yes', '--dir', dir, '--only', 'nginx'])
  for (const [name, file] of Object.entries(models))
    await runNode([HELIX_BIN, 'models', 'add', name, file, '--dir', dir])
  let key
  if (auth) {
    const config = join(dir, 'helix.yaml')
    const doc = parseDocument(await readFile(config, 'utf8'))
    doc.setIn(['rate_limit', 'per_key_per_min'], BENCH_LIMIT_PER_MIN)
    doc.setIn(['rate_limit', 'per_ip_per_min'], BENCH_LIMIT_PER_MIN)
    if (process.env.BENCH_TRACING) {
      doc.setIn(['tracing', 'enabled'], true)
      doc.setIn(['tracing', 'endpoint'], await otlpSink())
      doc.setIn(['tracing', 'sampling_ratio'], Number(process.env.BENCH_TRACING_RATIO ?? 1))
    }
    await writeFile(config, doc.toString())
    await runNode([HELIX_BIN, 'db', 'start', '--dir', dir])
    await runNode([HELIX_BIN, 'db', 'migrate', '--dir', dir])
    key = JSON.parse(
      await runNode([
        HELIX_BIN,
        'apikeys',
        'create',
        '--name',
        'bench',
        '--scopes',
        'infer,models:read',
        '--dir',
        dir,
        '--json',
      ]),
    ).key
  }
  const daemon = await startDaemon(dir, { auth })
  return {
    url: daemon.url,
    dir,
    key,
    /** helix bench arguments that authenticate as the bench key. */
    keyArgs: key ? ['--key', key] : [],
    stop: async () => {
      await daemon.stop()
      if (auth) await runNode([HELIX_BIN, 'db', 'stop', '--dir', dir]).catch(() => {})
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/**
 * A freshly started daemon is slow for its first seconds (JIT, onnxruntime memory arenas, first
 * batches): load it for a few seconds, unmeasured, before the runs that count.
 */
export async function warmUp(url, model, seconds = 3, keyArgs = []) {
  await helixBench([
    '--url',
    url,
    '--model',
    model,
    '-c',
    '32',
    '-d',
    `${seconds}s`,
    '--warmup',
    '0s',
    ...keyArgs,
  ])
}
