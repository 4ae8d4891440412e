import type { CancelSignal } from '../infer/cancel-signal.js'

/**
 * The text-model contract every protocol face (OpenAI /v1, KServe generate, WebSocket) calls. A text
 * model is a Hugging Face–format ONNX folder served as a version of the model repository
 * (models/<name>/<version>/ with config.json, tokenizer.json, tokenizer_config.json and
 * onnx/model.onnx); nothing here knows about HTTP.
 */

/** What a text model does: encoders embed or classify, decoders with a KV cache generate. */
export type TextTask = 'embeddings' | 'chat' | 'text-classification'

export const TEXT_TASKS: readonly TextTask[] = ['embeddings', 'chat', 'text-classification']

/** One chat message as OpenAI's API has it (content parts are joined text). */
export interface ChatMessage {
  role: string
  content: string
  name?: string
}

export interface SamplingOptions {
  /** New tokens at most; the model's max_new_tokens (config.yaml) caps it. */
  maxTokens?: number
  /** 0 is greedy; OpenAI's default is 1. */
  temperature?: number
  /** Nucleus sampling: the smallest set of tokens whose probability reaches top_p. */
  topP?: number
  /** Same seed, same prompt, same options: the same tokens (sampling uses a seeded generator). */
  seed?: number
  /** Strings that end the sequence; the stop string is not part of the output. */
  stop?: string[]
  presencePenalty?: number
  frequencyPenalty?: number
  /** Log probability of each chosen token (and the top ones) in each token event. */
  logprobs?: boolean
  /** 0–20 alternatives per position when logprobs is on. */
  topLogprobs?: number
  /** Keep generating past the end-of-sequence token (benchmarks ask for an exact length). */
  ignoreEos?: boolean
}

export interface GenerateRequest {
  /** A chat (rendered with the model's chat template) … */
  messages?: ChatMessage[]
  /** … or a plain prompt (text, or token ids as the OpenAI completions API allows). */
  prompt?: string | number[]
  sampling?: SamplingOptions
  /** Fairness between callers: the API key id or user (one key cannot starve the others). */
  key?: string
  /** Stops the sequence at its next step and frees its KV cache. */
  signal?: CancelSignal
}

export interface TokenLogprob {
  token: string
  logprob: number
  bytes: number[]
}

/** One generated token: `text` is the newly decodable text (never half a UTF-8 character; may be ''). */
export interface TokenEvent {
  type: 'token'
  tokenId: number
  text: string
  /** Position of this token in the completion, from 0. */
  index: number
  logprob?: TokenLogprob & { top: TokenLogprob[] }
}

export type FinishReason = 'stop' | 'length'

export interface GenerationUsage {
  promptTokens: number
  completionTokens: number
}

export interface GenerationTiming {
  /** Waiting for a place in the running batch. */
  queueMs: number
  /** From submission to the first token. */
  firstTokenMs: number
  totalMs: number
}

/** The last event of every generation that was not cancelled and did not fail. */
export interface DoneEvent {
  type: 'done'
  finishReason: FinishReason
  usage: GenerationUsage
  timing: GenerationTiming
  /** Text held back at the end (a trailing partial character, text before a stop string); usually ''. */
  text: string
}

export type GenerationEvent = TokenEvent | DoneEvent

export interface EmbedRequest {
  /** Texts or token id arrays. */
  inputs: Array<string | number[]>
  /** Truncate to this many dimensions (then re-normalise), where the model allows it. */
  dimensions?: number
  key?: string
  signal?: CancelSignal
}

export interface EmbedResult {
  embeddings: Float32Array[]
  promptTokens: number
  timing: { queueMs: number; computeMs: number; batchTokens: number }
}

/** What a loaded text model tells the API faces about itself. */
export interface TextModelInfo {
  task: TextTask
  /** Longest prompt + completion in tokens. */
  contextLength: number
  /** Most new tokens one request may ask for. */
  maxNewTokens: number
  /** Embedding width (embeddings models). */
  dimensions?: number
  /** True when `dimensions` may ask for fewer (Matryoshka models; config.yaml says so). */
  truncatableDimensions?: boolean
  /** Unix seconds the version was loaded (OpenAI's `created`). */
  created: number
}

/**
 * One loaded text-model version. Generation is an async iterator: breaking out of it (a client that
 * went away) cancels the sequence at its next step; errors are HelixErrors (QUEUE_FULL with
 * retryAfterSeconds past the waiting queue, INVALID_INPUT for a prompt past the context).
 */
export interface TextEngine {
  readonly info: TextModelInfo
  generate(request: GenerateRequest): AsyncIterable<GenerationEvent>
  embed(request: EmbedRequest): Promise<EmbedResult>
  /** Token ids of a text (no special tokens added) and the text of token ids. */
  encode(text: string): number[]
  decode(ids: number[]): string
  /** The prompt text the chat template renders for these messages (with the generation prompt). */
  renderChat(messages: ChatMessage[]): string
}

/** The live figures of the generation scheduler (metrics, `helix top`). */
export interface GenerationStats {
  running: number
  waiting: number
  kvCacheBytes: number
  kvCacheBudgetBytes: number
}
