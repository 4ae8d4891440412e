import { type Static, Type } from '@sinclair/typebox'
import { DATATYPES, type Datatype } from '../../core/infer/types.js'

/**
 * TypeBox schemas of the KServe v2 / Open Inference Protocol REST API (kserve.github.io, "Open Inference Protocol"). Routes use
 * them for validation and response serialisation; the OpenAPI document is generated from them.
 */

export const ErrorBody = Type.Object(
  { error: Type.String() },
  { $id: 'HelixError', description: 'Every non-2xx answer.' },
)

export const DatatypeSchema = Type.Unsafe<Datatype>({ type: 'string', enum: [...DATATYPES] })

const Parameters = Type.Record(Type.String(), Type.Unknown(), { description: 'Free-form parameters.' })
const Shape = Type.Array(Type.Integer({ minimum: -1 }), {
  description: 'Dimensions; -1 marks a dynamic one.',
})

export const ModelParams = Type.Object({ model: Type.String({ minLength: 1 }) })
export const VersionParams = Type.Object({
  model: Type.String({ minLength: 1 }),
  version: Type.String({ minLength: 1 }),
})

export const ServerMetadata = Type.Object({
  name: Type.String(),
  version: Type.String(),
  extensions: Type.Array(Type.String()),
})

export const Live = Type.Object({ live: Type.Boolean() })

export const ModelStatus = Type.Object({
  name: Type.String(),
  version: Type.String(),
  state: Type.String(),
  reason: Type.Optional(Type.String()),
  execution_provider: Type.Optional(Type.String()),
  device: Type.Optional(Type.String()),
  fallback_reason: Type.Optional(Type.String({ description: 'Why device auto runs this model on the CPU.' })),
  queue_depth: Type.Optional(Type.Integer({ description: 'Requests waiting in the scheduler queue.' })),
  queue_capacity: Type.Optional(
    Type.Integer({ description: 'Bound of the queue; beyond it requests get 429.' }),
  ),
})

export const Ready = Type.Object({
  ready: Type.Boolean(),
  reason: Type.Optional(
    Type.String({ description: 'Why the server is not ready: starting, a model loading, or draining.' }),
  ),
  models: Type.Optional(Type.Array(ModelStatus)),
})
export const ModelReady = Type.Object({ name: Type.String(), ready: Type.Boolean() })

const TensorMetadata = Type.Object({ name: Type.String(), datatype: DatatypeSchema, shape: Shape })
export const ModelMetadata = Type.Object({
  name: Type.String(),
  versions: Type.Array(Type.String()),
  platform: Type.String(),
  inputs: Type.Array(TensorMetadata),
  outputs: Type.Array(TensorMetadata),
  execution_provider: Type.Optional(
    Type.String({ description: 'Execution provider in use: cpu, cuda, webgpu.' }),
  ),
  device: Type.Optional(Type.String()),
  max_batch_size: Type.Optional(Type.Integer({ description: '0 when the model is not batched.' })),
})

export const InferInput = Type.Object({
  name: Type.String({ minLength: 1 }),
  shape: Type.Array(Type.Integer({ minimum: 0 })),
  datatype: DatatypeSchema,
  parameters: Type.Optional(Parameters),
  data: Type.Optional(Type.Array(Type.Unknown(), { description: 'Row-major elements, flat or nested.' })),
})
export const RequestedOutput = Type.Object({
  name: Type.String({ minLength: 1 }),
  parameters: Type.Optional(Parameters),
})

export const InferRequestSchema = Type.Object(
  {
    id: Type.Optional(Type.String()),
    parameters: Type.Optional(Parameters),
    inputs: Type.Array(InferInput, { minItems: 1 }),
    outputs: Type.Optional(Type.Array(RequestedOutput)),
  },
  { description: 'JSON body, or with the binary extension the JSON header before the raw tensor bytes.' },
)
export type InferRequestBody = Static<typeof InferRequestSchema>

export const InferResponseSchema = Type.Object({
  model_name: Type.String(),
  model_version: Type.String(),
  id: Type.Optional(Type.String()),
  parameters: Type.Optional(Parameters),
  outputs: Type.Array(
    Type.Object({
      name: Type.String(),
      datatype: DatatypeSchema,
      shape: Type.Array(Type.Integer()),
      parameters: Type.Optional(Parameters),
      data: Type.Optional(Type.Array(Type.Unknown())),
    }),
  ),
})

export const RepositoryIndexRequest = Type.Union([
  Type.Object({ ready: Type.Optional(Type.Boolean()) }),
  Type.Null(),
])
export const RepositoryIndex = Type.Array(ModelStatus)
export const Empty = Type.Object({})
