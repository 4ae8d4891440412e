import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseDocument } from 'yaml'
import { writeFileAtomic } from '../shared/atomic-write.js'
import { Failure, UserError } from '../shared/errors.js'
import { type BenchOptions, runSteps } from './run-bench.js'
import { buildPlan } from './targets/build-plan.js'
import { parseBaseUrl } from './targets/endpoint.js'
import { probe, serverMessage } from './targets/preflight.js'
import type { BenchResult, TlsOptions, TuneCandidate, TuneResult } from './types.js'

export interface TuneOptions extends BenchOptions {
  targetP99Ms: number
  batchSizes: number[]
  queueDelaysMs: number[]
  /**
   * models/<name> directory of the served model. Each candidate is written to its config.yaml before
   * the load call (the daemon's load API reloads from disk and takes no config override), and the
   * original file is restored afterwards. The candidate also travels in the load call as
   * `parameters.config`, for daemons that accept overrides.
   */
  modelDir: string
}

// A reload warms the new version up before it takes traffic; give it this long to become ready.
const READY_TIMEOUT_MS = 120_000

/**
 * Sweeps max_batch_size × max_queue_delay_ms through the daemon's load API at one concurrency and
 * recommends the candidate with the best throughput whose p99 meets the target without errors.
 * The model's own configuration is restored (and reloaded) afterwards, even when a step fails.
 */
export async function tune(options: TuneOptions): Promise<BenchResult> {
  const model = options.target.model
  if (options.target.kind !== 'kserve' || !model) {
    throw new UserError('BENCH_TUNE_UNSUPPORTED', '--tune needs --target kserve and --model', {
      hint: 'Tuning reloads a model through POST /v2/repository/models/{m}/load.',
    })
  }
  const { plan } = await buildPlan(options.target)
  const concurrency = Math.max(...options.concurrency)
  const configFile = join(options.modelDir, 'config.yaml')
  if (!existsSync(options.modelDir)) {
    throw new UserError('BENCH_MODEL_DIR_MISSING', `--model-dir ${options.modelDir} does not exist`, {
      hint: 'Point --model-dir at models/<name> in the helix directory the daemon serves.',
    })
  }
  const original = existsSync(configFile) ? await readFile(configFile, 'utf8') : undefined
  const load = (config?: Record<string, number>) => loadModel(options, model, config, configFile, original)
  const candidates: TuneCandidate[] = []
  const startedAt = new Date().toISOString()
  // The first failure wins: a restore that also fails must not hide why the sweep stopped.
  let failure: unknown
  try {
    for (const maxBatchSize of options.batchSizes) {
      for (const maxQueueDelayMs of options.queueDelaysMs) {
        await load({ max_batch_size: maxBatchSize, max_queue_delay_ms: maxQueueDelayMs })
        const [step] = await runSteps(plan, { ...options, rates: undefined, concurrency: [concurrency] })
        candidates.push({
          maxBatchSize,
          maxQueueDelayMs,
          throughput: step.throughput,
          p99: step.latency.p99,
          errors: step.errorCount,
          withinTarget: step.errorCount === 0 && step.latency.p99 <= options.targetP99Ms,
        })
      }
    }
  } catch (err) {
    failure = err
  }
  try {
    await (original === undefined ? rm(configFile, { force: true }) : writeFileAtomic(configFile, original))
    await load()
  } catch (err) {
    failure ??= err
  }
  if (failure) throw failure
  const best = candidates.filter((c) => c.withinTarget).sort((a, b) => b.throughput - a.throughput)[0]
  const tuning: TuneResult = {
    targetP99Ms: options.targetP99Ms,
    concurrency,
    method: 'model-dir',
    modelDir: options.modelDir,
    candidates,
    ...(best ? { best } : {}),
  }
  return {
    target: 'kserve',
    url: options.target.url,
    model,
    binary: options.target.binary,
    startedAt,
    workers: options.workers,
    steps: [],
    warnings: [],
    tuning,
  }
}

/** Applies a candidate (or, without one, the model's own config) and waits until the model is ready. */
async function loadModel(
  options: TuneOptions,
  model: string,
  config: Record<string, number> | undefined,
  configFile: string,
  original: string | undefined,
): Promise<void> {
  const { origin, basePath } = parseBaseUrl(options.target.url)
  const auth: Record<string, string> = options.target.key
    ? { authorization: `Bearer ${options.target.key}` }
    : {}
  if (config) {
    const doc = parseDocument(original ?? '')
    for (const [key, value] of Object.entries(config)) doc.set(key, value)
    await writeFileAtomic(configFile, doc.toString())
  }
  const body = config ? { parameters: { config } } : {}
  const path = `${basePath}/v2/repository/models/${encodeURIComponent(model)}/load`
  const res = await probe({
    origin,
    path,
    tls: options.target.tls,
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify(body)),
  })
  if (res.status < 200 || res.status >= 300) {
    throw new Failure(
      'BENCH_TUNE_LOAD_FAILED',
      `Loading ${model} with ${config ? JSON.stringify(config) : 'its own config'} failed (HTTP ${res.status}: ${serverMessage(res.text)})`,
      {
        hint: 'Check that the key has the admin scope and that the candidate sizes suit the model.',
      },
    )
  }
  const readyPath = `${basePath}/v2/models/${encodeURIComponent(model)}/ready`
  const deadline = Date.now() + READY_TIMEOUT_MS
  const tls = options.target.tls
  while ((await probe({ origin, path: readyPath, method: 'GET', headers: auth, tls })).status !== 200) {
    if (Date.now() > deadline) {
      throw new Failure(
        'BENCH_TUNE_NOT_READY',
        `${model} did not become ready within ${READY_TIMEOUT_MS / 1000}s after loading`,
        {
          hint: 'Check the daemon logs for why the model failed to load.',
        },
      )
    }
    await sleep(100)
  }
  if (config) await checkApplied(origin, basePath, model, auth, config, tls)
}

/** Metadata that reports max_batch_size must show the candidate, or the sweep would measure nothing. */
async function checkApplied(
  origin: string,
  basePath: string,
  model: string,
  auth: Record<string, string>,
  config: Record<string, number>,
  tls: TlsOptions | undefined,
): Promise<void> {
  const res = await probe({
    origin,
    tls,
    path: `${basePath}/v2/models/${encodeURIComponent(model)}`,
    method: 'GET',
    headers: auth,
  })
  const reported = (JSON.parse(res.text) as { max_batch_size?: unknown }).max_batch_size
  if (typeof reported === 'number' && reported !== config.max_batch_size) {
    throw new Failure(
      'BENCH_TUNE_NOT_APPLIED',
      `${model} reports max_batch_size ${reported} after loading a config with ${config.max_batch_size}`,
      {
        hint: 'Pass --model-dir (or --dir) for the repository the daemon actually serves.',
      },
    )
  }
}
