import { performance } from 'node:perf_hooks'
import type { GenerateRequest, SamplingOptions } from '../../core/generate/types.js'
import { invalidInput } from '../../core/infer/errors.js'
import { Failure } from '../../shared/errors.js'
import type { GenerateFrame } from '../../shared/realtime-protocol.js'
import {
  callerKey,
  cancelledError,
  type RequestContext,
  type RequestOutcome,
  textTarget,
} from './request-context.js'

/** The engine's sampling options of a generate frame; absent fields keep the engine's defaults. */
export function frameSampling(frame: GenerateFrame): SamplingOptions {
  const stop = typeof frame.stop === 'string' ? [frame.stop] : frame.stop
  const options: SamplingOptions = {
    maxTokens: frame.max_tokens,
    temperature: frame.temperature,
    topP: frame.top_p,
    seed: frame.seed,
    // An empty stop string would end every sequence at once.
    stop: stop?.filter((s) => s !== ''),
    presencePenalty: frame.presence_penalty,
    frequencyPenalty: frame.frequency_penalty,
    ignoreEos: frame.ignore_eos,
  }
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))
}

/**
 * A generate frame: one delta frame per token as the engine produces it, then a done frame. The
 * engine is pulled as fast as it produces, whatever the socket does (its frames queue in the session,
 * bounded), so a slow reader never holds up the batch other sequences share. A cancel (the client's,
 * or the daemon's at the end of a session) leaves the engine's iterator, which stops the sequence.
 */
export async function runGenerate(frame: GenerateFrame, context: RequestContext): Promise<RequestOutcome> {
  const { metrics, session, stream, principal } = context
  if ((frame.messages === undefined) === (frame.prompt === undefined))
    throw invalidInput('A generate frame has either "messages" or "prompt", not both and not neither.')
  const key = callerKey(principal)
  const { modelName, modelVersion, engine } = await textTarget(context, frame, 'chat')
  const request: GenerateRequest = {
    ...(frame.messages ? { messages: frame.messages } : { prompt: frame.prompt }),
    sampling: frameSampling(frame),
    ...(key ? { key } : {}),
    signal: stream.cancel,
  }
  const timing = metrics.tokenTiming(modelName)
  const started = performance.now()
  let last: number | undefined
  let completion = 0
  const keyId = principal?.keyId ?? null
  let failure: unknown
  try {
    for await (const event of engine.generate(request)) {
      if (stream.cancel.aborted) break
      if (event.type === 'token') {
        const now = performance.now()
        if (last === undefined) timing.firstToken((now - started) / 1000)
        else timing.interToken((now - last) / 1000)
        last = now
        completion++
        session.emit(stream, 'delta', { text: event.text, token_id: event.tokenId, index: event.index })
        continue
      }
      const usage = event.usage
      const tokens = { prompt: usage.promptTokens, completion: usage.completionTokens }
      metrics.textDone(modelName, 'realtime', event.finishReason, tokens, keyId)
      session.emit(stream, 'done', {
        finish_reason: event.finishReason,
        text: event.text,
        model: modelName,
        model_version: modelVersion,
        usage: {
          prompt_tokens: usage.promptTokens,
          completion_tokens: usage.completionTokens,
          total_tokens: usage.promptTokens + usage.completionTokens,
        },
      })
      return {
        model: modelName,
        version: modelVersion,
        items: 0,
        tokens: usage.promptTokens + usage.completionTokens,
      }
    }
  } catch (err) {
    failure = err
  }
  const cancelled = stream.cancel.aborted
  metrics.textDone(modelName, 'realtime', cancelled ? 'cancelled' : 'error', { prompt: 0, completion }, keyId)
  if (cancelled) throw cancelledError(stream)
  throw (
    failure ?? new Failure('INTERNAL', `The generation of request ${stream.id} ended without a done event.`)
  )
}
