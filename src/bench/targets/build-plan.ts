import { UserError } from '../../shared/errors.js'
import type { RequestPlan } from '../types.js'
import { httpPlan } from './http.js'
import { kservePlan, type ModelMetadataDoc } from './kserve.js'
import { openaiPlan } from './openai.js'
import { probe, requireSuccess } from './preflight.js'
import type { TargetOptions } from './target-options.js'

/**
 * Builds the request the benchmark replays and sends it once, so an unreachable server, a bad key,
 * an unknown model or a rejected body fail with one clear line before any load is applied.
 */
export async function buildPlan(
  options: TargetOptions,
): Promise<{ plan: RequestPlan; metadata?: ModelMetadataDoc }> {
  const auth: Record<string, string> = options.key ? { authorization: `Bearer ${options.key}` } : {}
  const built =
    options.kind === 'kserve'
      ? await kservePlan(options, auth)
      : { plan: options.kind === 'http' ? await httpPlan(options, auth) : openaiPlan(options, auth) }
  const url = built.plan.origin + built.plan.path
  requireSuccess(
    await probe(built.plan),
    url,
    () =>
      new UserError('BENCH_NOT_FOUND', `${url} does not exist (HTTP 404)`, {
        hint: 'Check --url and --model.',
      }),
  )
  return built
}
