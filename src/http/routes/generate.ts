// Route schemas carry OpenAPI tags and summaries (types from @fastify/swagger).
import type {} from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { SamplingOptions } from '../../core/generate/types.js'
import { cancelled } from '../../core/infer/errors.js'
import type { ModelService } from '../../core/infer/types.js'
import type { TextOutcome } from '../../core/metrics.js'
import { serverTiming } from '../openai/completion-reply.js'
import { Generations } from '../openai/generations.js'
import { stopList } from '../openai/sampling.js'
import { EventStream } from '../openai/sse.js'
import { streamFailure } from '../openai/stream-failure.js'
import {
  type GenerateBody,
  GenerateBody as GenerateBodySchema,
  GenerateResponse,
} from '../schemas/generate.js'
import { ErrorBody, ModelParams, VersionParams } from '../schemas/v2.js'
import { callerKey } from './openai.js'

const tags = ['kserve generate']

/** The engine's sampling options of Triton's generate parameters (absent ones: the engine's defaults). */
export function generateSampling(parameters: GenerateBody['parameters']): SamplingOptions {
  const p = parameters ?? {}
  const options: SamplingOptions = {
    maxTokens: p.max_tokens,
    temperature: p.temperature,
    topP: p.top_p,
    seed: p.seed,
    stop: stopList(p.stop),
    presencePenalty: p.presence_penalty,
    frequencyPenalty: p.frequency_penalty,
    ignoreEos: p.ignore_eos,
  }
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))
}

/**
 * Triton's generate extension: POST /v2/models/{m}[/versions/{v}]/generate answers
 * {model_name, model_version, text_output}; …/generate_stream sends one such object per piece of text
 * as server-sent events (no [DONE]: the stream ends), and a failure after the stream began as one
 * `data: {"error": "…"}` event.
 */
export async function generateRoutes(instance: FastifyInstance, options: { service: ModelService }) {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  const { service } = options
  const { metrics } = app

  const handler = async (
    { model, version }: { model: string; version?: string },
    body: GenerateBody,
    request: FastifyRequest,
    reply: FastifyReply,
    streamed: boolean,
  ) => {
    const endpoint = streamed ? 'generate_stream' : 'generate'
    const key = callerKey(request)
    let served: Awaited<ReturnType<ModelService['text']>>
    try {
      served = await service.text({
        model,
        ...(version !== undefined ? { version } : {}),
        task: 'chat',
        ...(key !== undefined ? { routingKey: key } : {}),
        headers: request.headers,
      })
    } catch (err) {
      metrics.textRefused(endpoint)
      throw err
    }
    const keyId = request.principal?.keyId ?? null
    const record = (outcome: TextOutcome, prompt = 0, completion = 0) =>
      metrics.textDone(served.modelName, endpoint, outcome, { prompt, completion }, keyId)
    const generations = new Generations(
      served.engine,
      [
        {
          prompt: body.text_input,
          sampling: generateSampling(body.parameters),
          ...(key !== undefined ? { key } : {}),
        },
      ],
      metrics.tokenTiming(served.modelName),
    )
    let left = false
    const onClose = () => {
      if (reply.raw.writableEnded) return
      left = true
      generations.stop()
    }
    reply.raw.once('close', onClose)
    const head = {
      ...(body.id !== undefined ? { id: body.id } : {}),
      model_name: served.modelName,
      model_version: served.modelVersion,
    }
    try {
      await generations.start()
      if (!streamed) {
        const [sequence] = await generations.collect()
        const { usage, finishReason } = sequence.done
        record(finishReason, usage.promptTokens, usage.completionTokens)
        reply.header('server-timing', serverTiming([sequence.done]))
        return reply.send({ ...head, text_output: sequence.text })
      }
    } catch (err) {
      record(left ? 'cancelled' : 'error')
      throw left ? cancelled(served.modelName) : err
    } finally {
      reply.raw.removeListener('close', onClose)
    }

    const stream = new EventStream(reply)
    stream.open()
    let completion = 0
    try {
      for await (const { event } of generations.events()) {
        if (event.type === 'done') {
          if (event.text !== '') await stream.send({ ...head, text_output: event.text })
          record(event.finishReason, event.usage.promptTokens, completion)
          break
        }
        completion++
        if (event.text !== '' && !(await stream.send({ ...head, text_output: event.text }))) {
          record('cancelled', 0, completion)
          break
        }
      }
    } catch (err) {
      record('error', 0, completion)
      await stream.send({ error: streamFailure(request, err).message })
    }
    stream.end()
    return reply
  }

  const response = { 200: GenerateResponse, '4xx': ErrorBody, '5xx': ErrorBody }
  const access = { access: { scope: 'infer', model: 'param' } } as const
  for (const [suffix, streamed] of [
    ['generate', false],
    ['generate_stream', true],
  ] as const) {
    const summary = streamed
      ? 'Generate text, streamed as server-sent events (Triton generate_stream).'
      : 'Generate text (Triton generate extension).'
    app.post(
      `/v2/models/:model/${suffix}`,
      { config: access, schema: { tags, summary, params: ModelParams, body: GenerateBodySchema, response } },
      (request, reply) => handler(request.params, request.body, request, reply, streamed),
    )
    app.post(
      `/v2/models/:model/versions/:version/${suffix}`,
      {
        config: access,
        schema: { tags, summary, params: VersionParams, body: GenerateBodySchema, response },
      },
      (request, reply) => handler(request.params, request.body, request, reply, streamed),
    )
  }
}
