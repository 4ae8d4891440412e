import type { SamplingOptions } from '../../core/generate/types.js'

/** The sampling fields OpenAI's chat and completions bodies share (null reads as absent). */
export interface SamplingFields {
  max_tokens?: number | null
  max_completion_tokens?: number | null
  temperature?: number | null
  top_p?: number | null
  seed?: number | null
  stop?: string | string[] | null
  presence_penalty?: number | null
  frequency_penalty?: number | null
  /** vLLM's extension: keep generating past the end-of-sequence token. */
  ignore_eos?: boolean | null
}

/** `stop` as a list without empty strings (an empty stop string would end every sequence at once). */
export function stopList(stop: string | string[] | null | undefined): string[] | undefined {
  if (stop === undefined || stop === null) return undefined
  const list = (typeof stop === 'string' ? [stop] : stop).filter((s) => s !== '')
  return list.length > 0 ? list : undefined
}

/** Drops the absent entries, so the engine's defaults apply to them. */
function defined(options: SamplingOptions): SamplingOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined && v !== null))
}

/**
 * The engine's sampling options of one OpenAI body. `max_completion_tokens` (the newer name) wins
 * over `max_tokens`. Absent fields are left to the engine, whose defaults are OpenAI's.
 */
export function samplingOf(
  body: SamplingFields,
  logprobs: { on: boolean; top?: number } = { on: false },
): SamplingOptions {
  return defined({
    maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
    temperature: body.temperature ?? undefined,
    topP: body.top_p ?? undefined,
    seed: body.seed ?? undefined,
    stop: stopList(body.stop),
    presencePenalty: body.presence_penalty ?? undefined,
    frequencyPenalty: body.frequency_penalty ?? undefined,
    ignoreEos: body.ignore_eos ?? undefined,
    ...(logprobs.on ? { logprobs: true, topLogprobs: logprobs.top ?? 0 } : {}),
  })
}

/**
 * The options of choice `i` of n: the same, with seed + i, so n choices differ from each other and a
 * request repeated with the same seed gets the same n choices back.
 */
export function choiceSampling(options: SamplingOptions, i: number): SamplingOptions {
  return options.seed === undefined ? options : { ...options, seed: options.seed + i }
}
