import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { RequestCancel } from '../../core/infer/cancel-signal.js'
import type { InferResult, ModelService } from '../../core/infer/types.js'
import { decodeInferRequest } from '../kserve/infer-request.js'
import { encodeInferResponse } from '../kserve/infer-response.js'
import { parseJson, RawBody } from '../plugins/body-parsers.js'
import {
  ErrorBody,
  type InferRequestBody,
  InferRequestSchema,
  InferResponseSchema,
  ModelParams,
  VersionParams,
} from '../schemas/v2.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Raw tensor bytes after the JSON header of a binary-extension request. */
    binaryData?: Buffer
    /** The binary-extension body those bytes live in (released for reuse after a clean answer). */
    rawBody?: RawBody
  }
}

/** Splits a binary-extension body into its JSON header (validated next by the schema) and tensor bytes. */
async function splitBinaryBody(request: FastifyRequest) {
  const body = request.body
  if (!(body instanceof RawBody)) return
  request.body = parseJson(body.bytes.toString('utf8', 0, body.headerLength))
  request.binaryData = body.bytes.subarray(body.headerLength)
  request.rawBody = body
}

/** POST /v2/models/{m}[/versions/{v}]/infer, JSON and the binary tensor extension. */
export async function inferRoutes(instance: FastifyInstance, options: { service: ModelService }) {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  const { service } = options
  const { metrics } = app

  /** Both infer routes: the body typed by its schema, the version only on the versioned route. */
  const handler = async (
    { model, version }: { model: string; version?: string },
    body: InferRequestBody,
    request: FastifyRequest,
    reply: FastifyReply,
  ) => {
    const decoded = decodeInferRequest(body, request.binaryData)
    // A client that goes away before its answer has its queued work dropped.
    const cancel = new RequestCancel()
    const onClose = () => {
      if (!reply.raw.writableEnded) cancel.abort()
    }
    reply.raw.once('close', onClose)
    let result: InferResult
    try {
      result = await service.infer({
        model,
        ...(version !== undefined ? { version } : {}),
        ...(decoded.id !== undefined ? { id: decoded.id } : {}),
        inputs: decoded.inputs,
        ...(decoded.outputs ? { outputs: decoded.outputs } : {}),
        // A model's sticky_header (A/B assignment) is read from these.
        headers: request.headers,
        signal: cancel,
        ...(request.traceContext ? { traceContext: request.traceContext } : {}),
        // A binary-extension body goes back to its pool once the core is done with the tensors in it.
        releaseInputs: () => {
          request.rawBody?.release()
          request.rawBody = undefined
          request.binaryData = undefined
        },
      })
    } catch (err) {
      metrics.inferenceFailed('rest', model, version, err)
      throw err
    } finally {
      reply.raw.removeListener('close', onClose)
    }
    metrics.inferenceDone('rest', result)
    const { queueMs, computeMs, batchSize } = result.timing

    const encoded = encodeInferResponse(result, decoded.binaryOutput)
    reply.header(
      'server-timing',
      `queue;dur=${queueMs.toFixed(3)}, compute;dur=${computeMs.toFixed(3)}, batch;desc=${batchSize}`,
    )
    if (encoded.headerLength !== undefined) {
      reply.header('inference-header-content-length', String(encoded.headerLength))
      reply.type('application/octet-stream')
    } else {
      reply.type('application/json; charset=utf-8')
    }
    return reply.send(encoded.payload)
  }

  const response = { 200: InferResponseSchema, '4xx': ErrorBody, '5xx': ErrorBody }
  app.post(
    '/v2/models/:model/infer',
    {
      config: { access: { scope: 'infer', model: 'param' } },
      schema: { params: ModelParams, body: InferRequestSchema, response },
      preValidation: splitBinaryBody,
    },
    (request, reply) => handler(request.params, request.body, request, reply),
  )
  app.post(
    '/v2/models/:model/versions/:version/infer',
    {
      config: { access: { scope: 'infer', model: 'param' } },
      schema: { params: VersionParams, body: InferRequestSchema, response },
      preValidation: splitBinaryBody,
    },
    (request, reply) => handler(request.params, request.body, request, reply),
  )
}
