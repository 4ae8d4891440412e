import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { ModelMetadata as ModelMetadataOf, ModelService } from '../../core/infer/types.js'

/** What the core adds to metadata beyond KServe's fields (the provider actually in use). */
type CoreExtras = { executionProvider?: string; device?: string; maxBatchSize?: number }

import { ErrorBody, ModelMetadata, ModelParams, ModelReady, VersionParams } from '../schemas/v2.js'

/** What both the plain and the versioned route pass on. */
type ModelRef = { model: string; version?: string }

/** GET /v2/models/{m}[/versions/{v}] and …/ready. */
export async function modelRoutes(instance: FastifyInstance, options: { service: ModelService }) {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  const { service } = options
  const metadata = async ({ model, version }: ModelRef) => {
    const meta = service.metadata(model, version) as ModelMetadataOf & CoreExtras
    return {
      name: meta.name,
      versions: meta.versions,
      platform: meta.platform,
      inputs: meta.inputs,
      outputs: meta.outputs,
      ...(meta.executionProvider ? { execution_provider: meta.executionProvider } : {}),
      ...(meta.device ? { device: meta.device } : {}),
      ...(meta.maxBatchSize !== undefined ? { max_batch_size: meta.maxBatchSize } : {}),
    }
  }
  const metadataSchema = { response: { 200: ModelMetadata, '4xx': ErrorBody, '5xx': ErrorBody } }
  app.get(
    '/v2/models/:model',
    {
      config: { access: { scope: 'models:read', model: 'param' } },
      schema: { params: ModelParams, ...metadataSchema },
    },
    (request) => metadata(request.params),
  )
  app.get(
    '/v2/models/:model/versions/:version',
    {
      config: { access: { scope: 'models:read', model: 'param' } },
      schema: { params: VersionParams, ...metadataSchema },
    },
    (request) => metadata(request.params),
  )

  const ready = async ({ model, version }: ModelRef, reply: FastifyReply) => {
    // modelReady throws MODEL_NOT_FOUND / VERSION_NOT_FOUND (404) for names the repository lacks.
    if (!service.modelReady(model, version)) {
      reply.code(503)
      return { error: `Model '${model}'${version ? ` version ${version}` : ''} is not ready.` }
    }
    return { name: model, ready: true }
  }
  const readySchema = { response: { 200: ModelReady, '4xx': ErrorBody, 503: ErrorBody } }
  app.get(
    '/v2/models/:model/ready',
    {
      config: { access: { scope: 'models:read', model: 'param' } },
      schema: { params: ModelParams, ...readySchema },
    },
    (request, reply) => ready(request.params, reply),
  )
  app.get(
    '/v2/models/:model/versions/:version/ready',
    {
      config: { access: { scope: 'models:read', model: 'param' } },
      schema: { params: VersionParams, ...readySchema },
    },
    (request, reply) => ready(request.params, reply),
  )
}
