// Route schemas carry OpenAPI tags and summaries (types from @fastify/swagger).

import { randomUUID } from 'node:crypto'
import type {} from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { GenerateRequest, TextTask } from '../../core/generate/types.js'
import { permitted } from '../../core/identity/access.js'
import { RequestCancel } from '../../core/infer/cancel-signal.js'
import { cancelled, modelNotFound, versionNotFound } from '../../core/infer/errors.js'
import type { ModelService, TextTarget } from '../../core/infer/types.js'
import type { TextEndpoint } from '../../core/metrics.js'
import { chatFormat } from '../openai/chat-format.js'
import { chatMessages } from '../openai/chat-messages.js'
import type { CompletionFormat } from '../openai/completion-format.js'
import {
  type CompletionHead,
  serverTiming,
  streamCompletion,
  wholeCompletion,
} from '../openai/completion-reply.js'
import { encodeEmbedding } from '../openai/embedding-encoding.js'
import { paramError, unsupportedParameter } from '../openai/error-shape.js'
import { Generations } from '../openai/generations.js'
import { parseModelRef } from '../openai/model-ref.js'
import { choiceSampling, samplingOf } from '../openai/sampling.js'
import { EventStream } from '../openai/sse.js'
import { textFormat } from '../openai/text-format.js'
import { CHAT_REFUSED, COMPLETION_REFUSED, refuseUnsupported } from '../openai/unsupported.js'
import { strictBodyValidator } from '../openai/validator.js'
import {
  ChatCompletionBody,
  ChatCompletionResponse,
  CompletionBody,
  CompletionResponse,
  EmbeddingsBody,
  EmbeddingsResponse,
  ModelIdParams,
  ModelList,
  ModelObject,
  OpenAIErrorBody,
} from '../schemas/openai.js'

/** Sequences one request may run at once (n × prompts): each holds a KV cache in the running batch. */
export const MAX_SEQUENCES = 8

/** OpenAI's default max_tokens of the (legacy) completions API; chat runs to the end of the context. */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16

const tags = ['openai']
const errors = { '4xx': OpenAIErrorBody, '5xx': OpenAIErrorBody }

/** The caller's API key id, or its user, for fairness between callers and sticky A/B routing. */
export function callerKey(request: FastifyRequest): string | undefined {
  const principal = request.principal
  if (principal?.keyId) return principal.keyId
  return principal?.userId ? `user:${principal.userId}` : undefined
}

/** Whether the caller may use a model (no principal: authentication is off or the route is public). */
function mayUse(request: FastifyRequest, model: string): boolean {
  const principal = request.principal
  return !principal || permitted(principal, { scope: 'infer', model })
}

function versionNumber(version: string): number {
  const n = Number(version)
  return Number.isFinite(n) ? n : -1
}

/** One /v1/models entry of a model's ready versions (the newest version's figures). */
function modelObject(id: string, versions: TextTarget[]) {
  const newest = versions.reduce((a, b) =>
    versionNumber(b.modelVersion) > versionNumber(a.modelVersion) ? b : a,
  )
  return {
    id,
    object: 'model' as const,
    created: newest.engine.info.created,
    owned_by: 'helix',
    task: newest.engine.info.task,
    context_length: newest.engine.info.contextLength,
  }
}

/**
 * The OpenAI-compatible API: GET /v1/models[/{model}], POST /v1/embeddings, /v1/chat/completions and
 * /v1/completions (SSE with stream: true). `model` is a repository name, or `name:version`.
 */
export async function openaiRoutes(instance: FastifyInstance, options: { service: ModelService }) {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  app.setValidatorCompiler(strictBodyValidator)
  const { service } = options
  const { metrics } = app

  /** The engine of the body's model for a task; failures before a model took the request count as refused. */
  const target = async (request: FastifyRequest, model: string, task: TextTask, endpoint: TextEndpoint) => {
    const ref = parseModelRef(model)
    try {
      return await service.text({
        model: ref.name,
        ...(ref.version !== undefined ? { version: ref.version } : {}),
        task,
        ...(callerKey(request) !== undefined ? { routingKey: callerKey(request) } : {}),
        headers: request.headers,
      })
    } catch (err) {
      metrics.textRefused(endpoint)
      throw err
    }
  }

  app.get(
    '/v1/models',
    {
      config: { access: { scope: 'infer', model: 'any' } },
      schema: {
        tags,
        summary: 'The text models the caller may use (ready versions).',
        response: { 200: ModelList, ...errors },
      },
    },
    async (request) => {
      const byName = new Map<string, TextTarget[]>()
      for (const t of service.textModels()) {
        if (!mayUse(request, t.modelName)) continue
        byName.set(t.modelName, [...(byName.get(t.modelName) ?? []), t])
      }
      const data = [...byName].map(([name, versions]) => modelObject(name, versions))
      return { object: 'list' as const, data: data.sort((a, b) => a.id.localeCompare(b.id)) }
    },
  )

  app.get(
    '/v1/models/:model',
    {
      config: { access: { scope: 'infer', model: 'any' } },
      schema: {
        tags,
        summary: 'One text model (`name` or `name:version`).',
        params: ModelIdParams,
        response: { 200: ModelObject, ...errors },
      },
    },
    async (request) => {
      const { model } = request.params
      const ref = parseModelRef(model)
      // A model the caller may not use reads as absent, as OpenAI answers.
      const all = mayUse(request, ref.name)
        ? service.textModels().filter((t) => t.modelName === ref.name)
        : []
      if (all.length === 0) throw modelNotFound(ref.name)
      if (ref.version === undefined) return modelObject(model, all)
      const versions = all.filter((t) => t.modelVersion === ref.version)
      if (versions.length === 0)
        throw versionNotFound(
          ref.name,
          ref.version,
          all.map((t) => t.modelVersion),
        )
      return modelObject(model, versions)
    },
  )

  app.post(
    '/v1/embeddings',
    {
      config: { access: { scope: 'infer', model: 'body' } },
      schema: {
        tags,
        summary: 'Embeddings of texts or token id arrays (OpenAI-compatible).',
        body: EmbeddingsBody,
        response: { 200: EmbeddingsResponse, ...errors },
      },
    },
    async (request, reply) => {
      const { body } = request
      const inputs = embeddingInputs(body.input)
      const served = await target(request, body.model, 'embeddings', 'embeddings')
      const { info } = served.engine
      if (body.dimensions !== undefined) {
        if (!info.truncatableDimensions)
          throw unsupportedParameter(
            'dimensions',
            `model '${served.modelName}' cannot shorten its embeddings`,
          )
        if (info.dimensions !== undefined && body.dimensions > info.dimensions)
          throw paramError(
            `'dimensions' is ${body.dimensions} but model '${served.modelName}' has ${info.dimensions}.`,
            'dimensions',
            'invalid_value',
          )
      }
      const keyId = request.principal?.keyId ?? null
      const cancel = new RequestCancel()
      const onClose = () => {
        if (!reply.raw.writableEnded) cancel.abort()
      }
      reply.raw.once('close', onClose)
      let result: Awaited<ReturnType<typeof served.engine.embed>>
      try {
        const key = callerKey(request)
        result = await served.engine.embed({
          inputs,
          ...(body.dimensions !== undefined ? { dimensions: body.dimensions } : {}),
          ...(key !== undefined ? { key } : {}),
          signal: cancel,
        })
      } catch (err) {
        metrics.textDone(served.modelName, 'embeddings', 'error', { prompt: 0, completion: 0 }, keyId)
        throw err
      } finally {
        reply.raw.removeListener('close', onClose)
      }
      metrics.textDone(
        served.modelName,
        'embeddings',
        'none',
        { prompt: result.promptTokens, completion: 0 },
        keyId,
      )
      const { queueMs, computeMs, batchTokens } = result.timing
      reply.header(
        'server-timing',
        `queue;dur=${queueMs.toFixed(3)}, compute;dur=${computeMs.toFixed(3)}, batch;desc=${batchTokens}`,
      )
      const format = body.encoding_format ?? 'float'
      return {
        object: 'list' as const,
        data: result.embeddings.map((vector, index) => ({
          object: 'embedding' as const,
          index,
          embedding: encodeEmbedding(vector, format),
        })),
        model: body.model,
        usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
      }
    },
  )

  /** Runs the sequences of a chat or completions request and answers whole or as an event stream. */
  const generate = async (
    request: FastifyRequest,
    reply: FastifyReply,
    served: TextTarget,
    run: {
      endpoint: TextEndpoint
      requests: GenerateRequest[]
      format: CompletionFormat
      idPrefix: string
      model: string
      perPrompt: number
      stream: boolean
      includeUsage: boolean
    },
  ) => {
    const keyId = request.principal?.keyId ?? null
    const record = (outcome: Parameters<typeof metrics.textDone>[2], prompt = 0, completion = 0) =>
      metrics.textDone(served.modelName, run.endpoint, outcome, { prompt, completion }, keyId)
    const generations = new Generations(served.engine, run.requests, metrics.tokenTiming(served.modelName))
    // A client that leaves before the answer starts cancels its sequences (a stream watches itself).
    let left = false
    const onClose = () => {
      if (reply.raw.writableEnded) return
      left = true
      generations.stop()
    }
    reply.raw.once('close', onClose)
    const head: CompletionHead = {
      id: `${run.idPrefix}-${randomUUID().replaceAll('-', '')}`,
      created: Math.floor(Date.now() / 1000),
      model: run.model,
      fingerprint: `${served.modelName}:${served.modelVersion}`,
    }
    try {
      // Failures before the first token (context, a full queue) still get their own HTTP status.
      await generations.start()
      if (!run.stream) {
        const whole = await wholeCompletion(generations, head, run.format, run.perPrompt)
        record(whole.result.outcome, whole.result.promptTokens, whole.result.completionTokens)
        reply.header('server-timing', serverTiming(whole.done))
        return reply.send(whole.body)
      }
    } catch (err) {
      record(left ? 'cancelled' : 'error')
      throw left ? cancelled(served.modelName) : err
    } finally {
      reply.raw.removeListener('close', onClose)
    }
    const stream = new EventStream(reply)
    stream.open()
    const ended = await streamCompletion(
      generations,
      head,
      run.format,
      { perPrompt: run.perPrompt, includeUsage: run.includeUsage },
      stream,
      request,
    )
    record(ended.outcome, ended.promptTokens, ended.completionTokens)
    return reply
  }

  app.post(
    '/v1/chat/completions',
    {
      config: { access: { scope: 'infer', model: 'body' } },
      schema: {
        tags,
        summary: 'A chat completion (OpenAI-compatible); stream: true answers with server-sent events.',
        body: ChatCompletionBody,
        response: { 200: ChatCompletionResponse, ...errors },
      },
    },
    async (request, reply) => {
      const { body } = request
      refuseUnsupported(body, CHAT_REFUSED)
      refuseStreamOptions(body)
      if (body.top_logprobs && !body.logprobs)
        throw paramError("'top_logprobs' needs 'logprobs': true.", 'top_logprobs', 'invalid_value')
      const messages = chatMessages(body.messages)
      const served = await target(request, body.model, 'chat', 'chat')
      const sampling = samplingOf(body, { on: body.logprobs === true, top: body.top_logprobs ?? 0 })
      const key = callerKey(request)
      const n = body.n ?? 1
      return generate(request, reply, served, {
        endpoint: 'chat',
        requests: Array.from({ length: n }, (_, i) => ({
          messages,
          sampling: choiceSampling(sampling, i),
          ...(key !== undefined ? { key } : {}),
        })),
        format: chatFormat(body.logprobs === true),
        idPrefix: 'chatcmpl',
        model: body.model,
        perPrompt: n,
        stream: body.stream === true,
        includeUsage: body.stream_options?.include_usage === true,
      })
    },
  )

  app.post(
    '/v1/completions',
    {
      config: { access: { scope: 'infer', model: 'body' } },
      schema: {
        tags,
        summary:
          'A text completion (OpenAI-compatible, legacy); stream: true answers with server-sent events.',
        body: CompletionBody,
        response: { 200: CompletionResponse, ...errors },
      },
    },
    async (request, reply) => {
      const { body } = request
      refuseUnsupported(body, COMPLETION_REFUSED)
      refuseStreamOptions(body)
      const prompts = completionPrompts(body.prompt)
      const n = body.n ?? 1
      if (prompts.length * n > MAX_SEQUENCES)
        throw paramError(
          `A request runs at most ${MAX_SEQUENCES} sequences (prompts × n); this one asks for ${prompts.length * n}.`,
          prompts.length > 1 ? 'prompt' : 'n',
          'invalid_value',
        )
      const served = await target(request, body.model, 'chat', 'completions')
      const logprobs = body.logprobs !== undefined && body.logprobs !== null
      const sampling = samplingOf(
        { ...body, max_tokens: body.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS },
        { on: logprobs, top: body.logprobs ?? 0 },
      )
      const key = callerKey(request)
      return generate(request, reply, served, {
        endpoint: 'completions',
        requests: prompts.flatMap((prompt) =>
          Array.from({ length: n }, (_, i) => ({
            prompt,
            sampling: choiceSampling(sampling, i),
            ...(key !== undefined ? { key } : {}),
          })),
        ),
        format: textFormat(logprobs),
        idPrefix: 'cmpl',
        model: body.model,
        perPrompt: n,
        stream: body.stream === true,
        includeUsage: body.stream_options?.include_usage === true,
      })
    },
  )
}

/** stream_options only means something on a stream (OpenAI refuses it otherwise, and so does Helix). */
function refuseStreamOptions(body: { stream?: boolean | null; stream_options?: unknown }): void {
  if (body.stream_options !== undefined && body.stream_options !== null && body.stream !== true)
    throw paramError(
      "'stream_options' is only allowed when 'stream' is true.",
      'stream_options',
      'invalid_value',
    )
}

/** The embeddings `input` as a list of texts or token id arrays; empty texts are refused, as OpenAI does. */
export function embeddingInputs(input: EmbeddingsBody['input']): Array<string | number[]> {
  const list: Array<string | number[]> =
    typeof input === 'string'
      ? [input]
      : typeof input[0] === 'number'
        ? [input as number[]]
        : (input as Array<string | number[]>)
  list.forEach((item, i) => {
    if (item === '')
      throw paramError(
        `'input${typeof input === 'string' ? '' : `.[${i}]`}' must not be empty.`,
        typeof input === 'string' ? 'input' : `input.[${i}]`,
        'invalid_value',
      )
  })
  return list
}

/** The completions `prompt` as a list of prompts (texts or token id arrays). */
export function completionPrompts(prompt: CompletionBody['prompt']): Array<string | number[]> {
  if (typeof prompt === 'string') return [prompt]
  if (typeof prompt[0] === 'number') return [prompt as number[]]
  return prompt as Array<string | number[]>
}
