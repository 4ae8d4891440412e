import { type Static, type TSchema, Type } from '@sinclair/typebox'

/**
 * TypeBox schemas of the OpenAI-compatible routes (/v1), after OpenAI's API reference. Bodies accept
 * fields they do not list (clients send many): the routes refuse the ones that would change the answer
 * and that Helix cannot honour (openai/unsupported.ts), and ignore the rest. Responses list what
 * Helix sends; the OpenAPI document is generated from both.
 */

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

export const OpenAIErrorBody = Type.Object(
  {
    error: Type.Object({
      message: Type.String(),
      type: Type.String({
        description:
          'invalid_request_error, authentication_error, permission_error, not_found_error, rate_limit_error or server_error.',
      }),
      param: Nullable(Type.String({ description: 'The request field at fault, e.g. messages.[0].role.' })),
      code: Nullable(Type.String({ description: 'e.g. model_not_found, context_length_exceeded.' })),
    }),
  },
  { description: 'Every non-2xx answer of a /v1 route (OpenAI error shape).' },
)

/** `name` or `name:version` (a specific version instead of the traffic policy). */
const ModelId = Type.String({ minLength: 1, description: 'A text model: `name`, or `name:version`.' })

export const ModelObject = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  created: Type.Integer({ description: 'Unix seconds the version was loaded.' }),
  owned_by: Type.String(),
  task: Type.String({ description: 'Helix extension: embeddings, chat or text-classification.' }),
  context_length: Type.Integer({ description: 'Helix extension: longest prompt + completion in tokens.' }),
})
export const ModelList = Type.Object({ object: Type.Literal('list'), data: Type.Array(ModelObject) })
export const ModelIdParams = Type.Object({ model: ModelId })

/** Inputs of one embeddings request at most, as OpenAI allows. */
export const MAX_EMBEDDING_INPUTS = 2048

const TokenIds = Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 })

export const EmbeddingsBody = Type.Object({
  model: ModelId,
  input: Type.Union(
    [
      Type.String(),
      Type.Array(Type.String(), { minItems: 1, maxItems: MAX_EMBEDDING_INPUTS }),
      TokenIds,
      Type.Array(TokenIds, { minItems: 1, maxItems: MAX_EMBEDDING_INPUTS }),
    ],
    { description: `A text, texts, a token id array or token id arrays (${MAX_EMBEDDING_INPUTS} at most).` },
  ),
  encoding_format: Type.Optional(
    Type.Union([Type.Literal('float'), Type.Literal('base64')], {
      description: 'base64: the little-endian float32 bytes of each vector.',
    }),
  ),
  dimensions: Type.Optional(
    Type.Integer({ minimum: 1, description: 'Fewer dimensions (models that allow truncation only).' }),
  ),
  user: Type.Optional(Type.String({ description: 'Ignored.' })),
})
export type EmbeddingsBody = Static<typeof EmbeddingsBody>

const Usage = Type.Object({
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Optional(Type.Integer()),
  total_tokens: Type.Integer(),
})

export const EmbeddingsResponse = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(
    Type.Object({
      object: Type.Literal('embedding'),
      index: Type.Integer(),
      embedding: Type.Union([Type.Array(Type.Number()), Type.String()]),
    }),
  ),
  model: Type.String(),
  usage: Usage,
})

/** The sampling fields chat and completions share. */
const sampling = {
  max_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
  temperature: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 2 }))),
  top_p: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 1 }))),
  seed: Type.Optional(Nullable(Type.Integer())),
  stop: Type.Optional(
    Nullable(
      Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })], { description: 'Up to 4.' }),
    ),
  ),
  n: Type.Optional(
    Nullable(Type.Integer({ minimum: 1, maximum: 8, description: 'Choices, run concurrently.' })),
  ),
  presence_penalty: Type.Optional(Nullable(Type.Number({ minimum: -2, maximum: 2 }))),
  frequency_penalty: Type.Optional(Nullable(Type.Number({ minimum: -2, maximum: 2 }))),
  stream: Type.Optional(Nullable(Type.Boolean())),
  stream_options: Type.Optional(Nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()) }))),
  user: Type.Optional(Type.String({ description: 'Ignored.' })),
  ignore_eos: Type.Optional(
    Nullable(Type.Boolean({ description: 'vLLM extension: generate max_tokens whatever the model says.' })),
  ),
}

const TextPart = Type.Object(
  { type: Type.String({ description: 'Only text parts are accepted.' }), text: Type.Optional(Type.String()) },
  { additionalProperties: true },
)

export const ChatMessageBody = Type.Object({
  role: Type.String({ description: 'system, developer (read as system), user or assistant.' }),
  content: Nullable(Type.Union([Type.String(), Type.Array(TextPart)])),
  name: Type.Optional(Type.String()),
})

export const ChatCompletionBody = Type.Object({
  model: ModelId,
  messages: Type.Array(ChatMessageBody, { minItems: 1 }),
  max_completion_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
  logprobs: Type.Optional(Nullable(Type.Boolean())),
  top_logprobs: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 20 }))),
  ...sampling,
})
export type ChatCompletionBody = Static<typeof ChatCompletionBody>

export const CompletionBody = Type.Object({
  model: ModelId,
  prompt: Type.Union(
    [
      Type.String(),
      Type.Array(Type.String(), { minItems: 1 }),
      TokenIds,
      Type.Array(TokenIds, { minItems: 1 }),
    ],
    { description: 'A prompt, prompts, or token id arrays; n choices per prompt, 8 sequences at most.' },
  ),
  logprobs: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 5 }))),
  echo: Type.Optional(Nullable(Type.Boolean({ description: 'true is refused.' }))),
  ...sampling,
})
export type CompletionBody = Static<typeof CompletionBody>

const TopLogprob = Type.Object({
  token: Type.String(),
  logprob: Type.Number(),
  bytes: Nullable(Type.Array(Type.Integer())),
})
const ChatLogprobs = Nullable(
  Type.Object({
    content: Nullable(
      Type.Array(Type.Object({ ...TopLogprob.properties, top_logprobs: Type.Array(TopLogprob) })),
    ),
  }),
)
const CompletionLogprobs = Nullable(
  Type.Object({
    tokens: Type.Array(Type.String()),
    token_logprobs: Type.Array(Type.Number()),
    top_logprobs: Nullable(Type.Array(Type.Record(Type.String(), Type.Number()))),
    text_offset: Type.Array(Type.Integer()),
  }),
)
const FinishReason = Type.Union([Type.Literal('stop'), Type.Literal('length')])

const completionHead = {
  id: Type.String(),
  created: Type.Integer(),
  model: Type.String(),
  system_fingerprint: Type.Optional(Type.String()),
}

export const ChatCompletionResponse = Type.Object(
  {
    ...completionHead,
    object: Type.Literal('chat.completion'),
    choices: Type.Array(
      Type.Object({
        index: Type.Integer(),
        message: Type.Object({
          role: Type.Literal('assistant'),
          content: Type.String(),
          refusal: Nullable(Type.String()),
        }),
        logprobs: ChatLogprobs,
        finish_reason: FinishReason,
      }),
    ),
    usage: Usage,
  },
  {
    description:
      'With stream: true the answer is text/event-stream instead: chat.completion.chunk events, then data: [DONE].',
  },
)

export const CompletionResponse = Type.Object(
  {
    ...completionHead,
    object: Type.Literal('text_completion'),
    choices: Type.Array(
      Type.Object({
        index: Type.Integer(),
        text: Type.String(),
        logprobs: CompletionLogprobs,
        finish_reason: FinishReason,
      }),
    ),
    usage: Usage,
  },
  {
    description:
      'With stream: true the answer is text/event-stream of text_completion events, then data: [DONE].',
  },
)
