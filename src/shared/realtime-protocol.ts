import { type Static, type TSchema, Type } from '@sinclair/typebox'

/**
 * The frames of the WebSocket API at GET /v1/realtime, shared by the daemon (src/http/realtime) and
 * the typed client (src/client/realtime-client.ts). Every frame is one JSON text message with a
 * `type`. Client frames have TypeBox schemas (the daemon validates them); server frames are typed
 * here and documented in docs/realtime.md.
 */

/** A request id: chosen by the client, unique among the session's unfinished requests. */
const RequestId = Type.String({ minLength: 1, maxLength: 128 })
const Model = Type.String({ minLength: 1, maxLength: 256 })
const Version = Type.String({ minLength: 1, maxLength: 64 })
const Seq = Type.Integer({ minimum: 0 })

/** A KServe v2 JSON tensor, as POST /v2/models/{m}/infer takes it (the daemon checks it strictly). */
export const JsonTensorSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  shape: Type.Array(Type.Integer({ minimum: 0 })),
  datatype: Type.String(),
  parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  data: Type.Optional(Type.Array(Type.Unknown())),
})
export type JsonTensor = Static<typeof JsonTensorSchema>

export const AuthFrameSchema = Type.Object({
  type: Type.Literal('auth'),
  /** An API key (hx_…) or an access token; may be absent when the daemon runs without authentication. */
  token: Type.Optional(Type.String({ maxLength: 8192 })),
})

export const ResumeFrameSchema = Type.Object({
  type: Type.Literal('resume'),
  session_id: Type.String({ minLength: 1, maxLength: 64 }),
  resume_token: Type.String({ minLength: 1, maxLength: 128 }),
  /** The last seq received per request; requests not named resume after their last acknowledged frame. */
  last_seq: Type.Optional(Type.Record(Type.String(), Seq)),
})

export const InferFrameSchema = Type.Object({
  type: Type.Literal('infer'),
  id: RequestId,
  model: Model,
  version: Type.Optional(Version),
  inputs: Type.Array(JsonTensorSchema, { minItems: 1 }),
  outputs: Type.Optional(Type.Array(Type.Object({ name: Type.String({ minLength: 1 }) }))),
})

export const EmbeddingsFrameSchema = Type.Object({
  type: Type.Literal('embeddings'),
  id: RequestId,
  model: Model,
  version: Type.Optional(Version),
  /** One text, several, or token ids (one array or several), as OpenAI's /v1/embeddings takes them. */
  input: Type.Union([
    Type.String(),
    Type.Array(Type.String(), { minItems: 1 }),
    Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }),
    Type.Array(Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }), { minItems: 1 }),
  ]),
  dimensions: Type.Optional(Type.Integer({ minimum: 1 })),
})

export const ChatMessageSchema = Type.Object({
  role: Type.String({ minLength: 1 }),
  content: Type.String(),
  name: Type.Optional(Type.String()),
})

export const GenerateFrameSchema = Type.Object({
  type: Type.Literal('generate'),
  id: RequestId,
  model: Model,
  version: Type.Optional(Version),
  /** A chat (rendered with the model's template) or a plain prompt: exactly one of the two. */
  messages: Type.Optional(Type.Array(ChatMessageSchema, { minItems: 1 })),
  prompt: Type.Optional(Type.Union([Type.String(), Type.Array(Type.Integer({ minimum: 0 }))])),
  max_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  seed: Type.Optional(Type.Integer()),
  stop: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })])),
  presence_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
  ignore_eos: Type.Optional(Type.Boolean()),
})

export const CancelFrameSchema = Type.Object({ type: Type.Literal('cancel'), id: RequestId })
export const AckFrameSchema = Type.Object({ type: Type.Literal('ack'), id: RequestId, seq: Seq })
export const PingFrameSchema = Type.Object({
  type: Type.Literal('ping'),
  /** Echoed in the pong (a client's timestamp, say). */
  data: Type.Optional(Type.Unknown()),
})

/** Every client frame by its type: the daemon validates a frame against the schema its type names. */
export const CLIENT_FRAME_SCHEMAS = {
  auth: AuthFrameSchema,
  resume: ResumeFrameSchema,
  infer: InferFrameSchema,
  embeddings: EmbeddingsFrameSchema,
  generate: GenerateFrameSchema,
  cancel: CancelFrameSchema,
  ack: AckFrameSchema,
  ping: PingFrameSchema,
} as const satisfies Record<string, TSchema>

export type ClientFrameType = keyof typeof CLIENT_FRAME_SCHEMAS
export type AuthFrame = Static<typeof AuthFrameSchema>
export type ResumeFrame = Static<typeof ResumeFrameSchema>
export type InferFrame = Static<typeof InferFrameSchema>
export type EmbeddingsFrame = Static<typeof EmbeddingsFrameSchema>
export type GenerateFrame = Static<typeof GenerateFrameSchema>
export type CancelFrame = Static<typeof CancelFrameSchema>
export type AckFrame = Static<typeof AckFrameSchema>
export type PingFrame = Static<typeof PingFrameSchema>
export type ClientFrame =
  | AuthFrame
  | ResumeFrame
  | InferFrame
  | EmbeddingsFrame
  | GenerateFrame
  | CancelFrame
  | AckFrame
  | PingFrame
/** The frames that start a request. */
export type RequestFrame = InferFrame | EmbeddingsFrame | GenerateFrame

// ---- server → client ----------------------------------------------------------------------------

/** Sent once the first frame authenticated the socket: what a resume needs, and the limits in force. */
export interface SessionFrame {
  type: 'session'
  session_id: string
  /** Single-use secret for the next resume of this session (a fresh one comes with each `resumed`). */
  resume_token: string
  /** How often the daemon pings; a silent connection is dead after about twice this. */
  heartbeat_ms: number
  /** How long unfinished requests keep running after the connection drops. */
  resume_grace_ms: number
  max_requests: number
  max_message_bytes: number
}

/** The answer to a resume: the session is back on this connection; replayed frames follow. */
export interface ResumedFrame {
  type: 'resumed'
  session_id: string
  resume_token: string
  /** Ids named in last_seq that the daemon never received: send those requests again. */
  unknown: string[]
}

/** Every frame that belongs to a request carries its id and a seq (1, 2, … per request). */
interface RequestFrameBase {
  id: string
  seq: number
}

/** One generated token: `text` is the newly decodable text (may be ''). */
export interface DeltaFrame extends RequestFrameBase {
  type: 'delta'
  text: string
  token_id: number
  /** Position of the token in the completion, from 0. */
  index: number
}

export interface TokenUsage {
  prompt_tokens: number
  completion_tokens?: number
  total_tokens: number
}

/** The last frame of a generation: the whole text is every delta's text followed by `text`. */
export interface DoneFrame extends RequestFrameBase {
  type: 'done'
  finish_reason: 'stop' | 'length'
  /** Text held back until the end (a stop string's prefix that did not become one); usually ''. */
  text: string
  model: string
  model_version: string
  usage: Required<TokenUsage>
}

/** A KServe tensor of an infer result (JSON data). */
export interface ResultTensor {
  name: string
  datatype: string
  shape: number[]
  data: unknown[]
}

export interface InferResultFrame extends RequestFrameBase {
  type: 'result'
  model_name: string
  model_version: string
  outputs: ResultTensor[]
}

export interface EmbeddingsResultFrame extends RequestFrameBase {
  type: 'result'
  model: string
  model_version: string
  data: { object: 'embedding'; index: number; embedding: number[] }[]
  usage: TokenUsage
}

/**
 * A failed request (with its id and seq: the request's last frame), or a refused frame (with the id
 * when the frame had one, no seq: nothing started). `status` is the HTTP status the same failure gets
 * on REST.
 */
export interface ErrorFrame {
  type: 'error'
  id?: string
  seq?: number
  code: string
  message: string
  status: number
  /** Seconds to wait before retrying (rate limits, full queues). */
  retry_after?: number
}

export interface PongFrame {
  type: 'pong'
  data?: unknown
}

export type ServerFrame =
  | SessionFrame
  | ResumedFrame
  | DeltaFrame
  | DoneFrame
  | InferResultFrame
  | EmbeddingsResultFrame
  | ErrorFrame
  | PongFrame

/** Close codes of the daemon (RFC 6455 §7.4: 4000–4999 are the application's). */
export const REALTIME_CLOSE = {
  /** The client said goodbye: nothing is kept for a resume. */
  normal: 1000,
  /** The daemon is shutting down. */
  goingAway: 1001,
  /** A frame larger than realtime.max_message_bytes. */
  tooBig: 1009,
  /** No valid auth frame in time, a bad credential, or one revoked or expired while connected. */
  unauthenticated: 4401,
  /** The client did not read: its send queue passed realtime.max_send_queue_bytes. */
  slowConsumer: 4008,
  /** Another connection resumed this session. */
  sessionTaken: 4409,
  /** Too many sockets for this credential (realtime.max_sockets_per_principal). */
  tooMany: 4429,
} as const

/** The path of the WebSocket API. */
export const REALTIME_PATH = '/v1/realtime'
