import type { FastifyRequest } from 'fastify'
import type { DoneEvent } from '../../core/generate/types.js'
import type { TextOutcome } from '../../core/metrics.js'
import type { CompletionFormat } from './completion-format.js'
import { openaiErrorBody } from './error-shape.js'
import type { Generations } from './generations.js'
import type { EventStream } from './sse.js'
import { streamFailure } from './stream-failure.js'

/** What every answer of one request shares. */
export interface CompletionHead {
  id: string
  created: number
  /** The `model` the client asked for. */
  model: string
  /** The version that served it, `name:version`. */
  fingerprint: string
}

/** How a request ended, and the tokens it used (for metrics and usage). */
export interface CompletionOutcome {
  outcome: TextOutcome
  promptTokens: number
  completionTokens: number
}

/** OpenAI's usage object. */
export function usageOf(promptTokens: number, completionTokens: number) {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  }
}

/**
 * Prompt tokens of a request whose sequences run `perPrompt` at a time on each prompt: a prompt is
 * read once however many choices it has (as OpenAI counts).
 */
export function promptTokensOf(done: readonly (DoneEvent | undefined)[], perPrompt: number): number {
  let total = 0
  for (let i = 0; i < done.length; i += perPrompt) total += done[i]?.usage.promptTokens ?? 0
  return total
}

function outcomeOf(done: readonly DoneEvent[]): TextOutcome {
  return done.some((d) => d.finishReason === 'length') ? 'length' : 'stop'
}

/** `Server-Timing` of a whole answer: the slowest sequence's queue wait, first token and total. */
export function serverTiming(done: readonly DoneEvent[]): string {
  const max = (pick: (d: DoneEvent) => number) => Math.max(0, ...done.map(pick)).toFixed(3)
  return `queue;dur=${max((d) => d.timing.queueMs)}, ttft;dur=${max((d) => d.timing.firstTokenMs)}, total;dur=${max((d) => d.timing.totalMs)}`
}

/** Runs every sequence to its end and builds the whole (non-streamed) answer. */
export async function wholeCompletion(
  generations: Generations,
  head: CompletionHead,
  format: CompletionFormat,
  perPrompt: number,
): Promise<{ body: object; done: DoneEvent[]; result: CompletionOutcome }> {
  const finished = await generations.collect()
  const done = finished.map((s) => s.done)
  const promptTokens = promptTokensOf(done, perPrompt)
  const completionTokens = done.reduce((sum, d) => sum + d.usage.completionTokens, 0)
  const body = {
    id: head.id,
    object: format.object,
    created: head.created,
    model: head.model,
    system_fingerprint: head.fingerprint,
    choices: finished.map((sequence, i) => format.choice(i, sequence)),
    usage: usageOf(promptTokens, completionTokens),
  }
  return { body, done, result: { outcome: outcomeOf(done), promptTokens, completionTokens } }
}

/**
 * Streams the sequences as OpenAI chunks: each choice's opening, its text as it comes (a token's text
 * never splits a character), its finish chunk; then, when asked, a usage chunk with no choices, and
 * `data: [DONE]`. A client that goes away stops the loop, which cancels the sequences. A failure
 * after the stream began is sent as one `data: {"error": …}` event and the stream ends without
 * [DONE] (as vLLM does; OpenAI's clients throw it).
 */
export async function streamCompletion(
  generations: Generations,
  head: CompletionHead,
  format: CompletionFormat,
  options: { perPrompt: number; includeUsage: boolean },
  stream: EventStream,
  request: FastifyRequest,
): Promise<CompletionOutcome> {
  const chunkHead = {
    id: head.id,
    object: format.chunkObject,
    created: head.created,
    model: head.model,
    system_fingerprint: head.fingerprint,
  }
  // With include_usage, OpenAI gives every chunk a usage field, null until the last one.
  const usageField = options.includeUsage ? { usage: null } : {}
  const chunk = (choice: object) => ({ ...chunkHead, choices: [choice], ...usageField })
  const done: DoneEvent[] = []
  const offsets = new Array<number>(generations.size).fill(0)
  let completionTokens = 0
  const result = (outcome: TextOutcome): CompletionOutcome => ({
    outcome,
    promptTokens: promptTokensOf(done, options.perPrompt),
    completionTokens,
  })
  try {
    let open = true
    for (let i = 0; open && i < generations.size && format.opening; i++)
      open = await stream.send(chunk(format.opening(i)))
    if (open) {
      for await (const { index, event } of generations.events()) {
        if (event.type === 'token') {
          completionTokens++
          // A token that released no text yet (half a character, a possible stop string) is sent
          // with the next one, unless its logprob must be reported now.
          if (event.text === '' && !event.logprob) continue
          open = await stream.send(chunk(format.delta(index, event.text, [event], offsets[index])))
          offsets[index] += event.text.length
        } else {
          done[index] = event
          if (event.text !== '')
            open = await stream.send(chunk(format.delta(index, event.text, [], offsets[index])))
          open = open && (await stream.send(chunk(format.finish(index, event.finishReason))))
        }
        if (!open) break
      }
    }
  } catch (err) {
    await stream.send(openaiErrorBody(err, streamFailure(request, err), request.url))
    stream.end()
    return result('error')
  }
  if (stream.gone) {
    stream.end()
    return result('cancelled')
  }
  const ended = result(outcomeOf(done))
  if (options.includeUsage)
    await stream.send({ ...chunkHead, choices: [], usage: usageOf(ended.promptTokens, completionTokens) })
  await stream.send('[DONE]')
  stream.end()
  return ended
}
