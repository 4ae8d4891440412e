import type { TokenEvent } from '../../core/generate/types.js'
import type { CompletionFormat } from './completion-format.js'

/**
 * choices[].logprobs of OpenAI's (legacy) completions API: parallel lists per token, top
 * alternatives as {token: logprob} maps, and each token's character offset in the text.
 */
export function textLogprobs(tokens: TokenEvent[], offsets: number[]) {
  const withLogprob = tokens.map((t, i) => ({ t, offset: offsets[i] })).filter((x) => x.t.logprob)
  return {
    tokens: withLogprob.map(({ t }) => t.logprob!.token),
    token_logprobs: withLogprob.map(({ t }) => t.logprob!.logprob),
    top_logprobs: withLogprob.map(({ t }) =>
      Object.fromEntries(t.logprob!.top.map((top) => [top.token, top.logprob])),
    ),
    text_offset: withLogprob.map(({ offset }) => offset),
  }
}

/** Offsets of each token's text in a completion, from the text the tokens released. */
export function textOffsets(tokens: TokenEvent[], start = 0): number[] {
  let at = start
  return tokens.map((t) => {
    const offset = at
    at += t.text.length
    return offset
  })
}

/** Text completions: text choices, logprobs as parallel lists (logprobs: k asks for k alternatives). */
export function textFormat(logprobs: boolean): CompletionFormat {
  return {
    object: 'text_completion',
    chunkObject: 'text_completion',
    delta: (index, text, tokens, offset) => ({
      index,
      text,
      logprobs: logprobs && tokens.length > 0 ? textLogprobs(tokens, textOffsets(tokens, offset)) : null,
      finish_reason: null,
    }),
    finish: (index, reason) => ({ index, text: '', logprobs: null, finish_reason: reason }),
    choice: (index, sequence) => ({
      index,
      text: sequence.text,
      logprobs: logprobs ? textLogprobs(sequence.tokens, textOffsets(sequence.tokens)) : null,
      finish_reason: sequence.done.finishReason,
    }),
  }
}
