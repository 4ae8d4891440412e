import type { FinishReason, TokenEvent } from '../../core/generate/types.js'
import type { FinishedSequence } from './generations.js'

/**
 * How one OpenAI API writes its choices: chat completions (messages and deltas) and text completions
 * (text) share the driver in completion-reply.ts and differ only here.
 */
export interface CompletionFormat {
  /** `object` of a whole answer and of each streamed chunk. */
  readonly object: string
  readonly chunkObject: string
  /** A choice's first chunk, before any token (chat's role delta); none for text completions. */
  opening?(index: number): object
  /** A chunk of text and the tokens it came from (their logprobs, when asked); `offset` is the text so far. */
  delta(index: number, text: string, tokens: TokenEvent[], offset: number): object
  /** The chunk that ends a choice. */
  finish(index: number, reason: FinishReason): object
  /** One choice of a whole answer. */
  choice(index: number, sequence: FinishedSequence): object
}
