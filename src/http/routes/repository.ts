import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import type { ModelService } from '../../core/infer/types.js'
import { Empty, ErrorBody, ModelParams, RepositoryIndex, RepositoryIndexRequest } from '../schemas/v2.js'
import { modelStatus } from './health.js'

/** POST /v2/repository/index and /v2/repository/models/{m}/load|unload (model_repository extension). */
export async function repositoryRoutes(instance: FastifyInstance, options: { service: ModelService }) {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  const { service } = options
  app.post(
    '/v2/repository/index',
    {
      config: { access: { scope: 'models:read' } },
      schema: { body: RepositoryIndexRequest, response: { 200: RepositoryIndex, '4xx': ErrorBody } },
    },
    async (request) => service.index({ readyOnly: request.body?.ready === true }).map(modelStatus),
  )
  const schema = { params: ModelParams, response: { 200: Empty, '4xx': ErrorBody, '5xx': ErrorBody } }
  app.post(
    '/v2/repository/models/:model/load',
    { config: { access: { scope: 'models:admin' } }, schema },
    async (request) => {
      await service.load(request.params.model)
      return {}
    },
  )
  app.post(
    '/v2/repository/models/:model/unload',
    { config: { access: { scope: 'models:admin' } }, schema },
    async (request) => {
      await service.unload(request.params.model)
      return {}
    },
  )
}
