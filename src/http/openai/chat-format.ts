import type { TokenEvent } from '../../core/generate/types.js'
import type { CompletionFormat } from './completion-format.js'

/** choices[].logprobs.content of OpenAI's chat API, one entry per token. */
export function chatLogprobs(tokens: TokenEvent[]) {
  return {
    content: tokens.flatMap((t) =>
      t.logprob
        ? [
            {
              token: t.logprob.token,
              logprob: t.logprob.logprob,
              bytes: t.logprob.bytes,
              top_logprobs: t.logprob.top.map((top) => ({
                token: top.token,
                logprob: top.logprob,
                bytes: top.bytes,
              })),
            },
          ]
        : [],
    ),
  }
}

/** Chat completions: message and delta choices, logprobs as choices[].logprobs.content. */
export function chatFormat(logprobs: boolean): CompletionFormat {
  return {
    object: 'chat.completion',
    chunkObject: 'chat.completion.chunk',
    opening: (index) => ({
      index,
      delta: { role: 'assistant', content: '' },
      logprobs: null,
      finish_reason: null,
    }),
    delta: (index, text, tokens) => ({
      index,
      delta: { content: text },
      logprobs: logprobs && tokens.length > 0 ? chatLogprobs(tokens) : null,
      finish_reason: null,
    }),
    finish: (index, reason) => ({ index, delta: {}, logprobs: null, finish_reason: reason }),
    choice: (index, sequence) => ({
      index,
      message: { role: 'assistant', content: sequence.text, refusal: null },
      logprobs: logprobs ? chatLogprobs(sequence.tokens) : null,
      finish_reason: sequence.done.finishReason,
    }),
  }
}
