import { UserError } from '../../shared/errors.js'
import type { RequestPlan } from '../types.js'
import { parseBaseUrl } from './endpoint.js'
import { encodeBinaryRequest } from './kserve-binary.js'
import { type InputSpec, type KserveRequest, randomRequest } from './kserve-tensors.js'
import { probe, requireSuccess } from './preflight.js'
import { readJsonFile } from './read-input.js'
import type { TargetOptions } from './target-options.js'

export interface ModelMetadataDoc {
  name: string
  versions?: string[]
  platform?: string
  inputs: InputSpec[]
  outputs?: InputSpec[]
}

/**
 * A KServe v2 infer request for --model: the model's metadata is read first (so an unknown model or a
 * bad key fails before any load), the body comes from --input or random data matching the inputs.
 */
export async function kservePlan(
  options: TargetOptions,
  auth: Record<string, string>,
): Promise<{ plan: RequestPlan; metadata: ModelMetadataDoc }> {
  const { origin, basePath } = parseBaseUrl(options.url)
  if (!options.model) {
    throw new UserError('BENCH_MODEL_REQUIRED', '--model is required for --target kserve', {
      hint: 'Pass --model cls (see `helix models list`).',
    })
  }
  const modelPath = `${basePath}/v2/models/${encodeURIComponent(options.model)}${options.modelVersion ? `/versions/${encodeURIComponent(options.modelVersion)}` : ''}`
  const res = await probe({ origin, path: modelPath, method: 'GET', headers: auth, tls: options.tls })
  requireSuccess(
    res,
    origin + modelPath,
    () =>
      new UserError(
        'MODEL_NOT_FOUND',
        `Model "${options.model}"${options.modelVersion ? ` version ${options.modelVersion}` : ''} is not served at ${options.url}`,
        {
          hint: 'Check --model against `helix models list` (or GET /v2/repository/index).',
        },
      ),
  )
  const metadata = JSON.parse(res.text) as ModelMetadataDoc
  const request = options.inputFile
    ? await readJsonFile<KserveRequest>(options.inputFile, 'input')
    : randomRequest(metadata.inputs ?? [], options.shapes)
  if (!Array.isArray(request.inputs)) {
    throw new UserError(
      'BENCH_INPUT_INVALID',
      `--input ${options.inputFile} is not a KServe v2 infer request (no "inputs" array)`,
      {
        hint: 'Give a body like {"inputs":[{"name","shape","datatype","data"}]}.',
      },
    )
  }
  const encoded = options.binary
    ? encodeBinaryRequest(request)
    : { body: Buffer.from(JSON.stringify(request)), headers: { 'content-type': 'application/json' } }
  return {
    plan: {
      origin,
      path: `${modelPath}/infer`,
      method: 'POST',
      headers: { ...auth, ...encoded.headers, ...options.headers },
      body: encoded.body,
      stream: 'none',
      ...(options.tls ? { tls: options.tls } : {}),
    },
    metadata,
  }
}
