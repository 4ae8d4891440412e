import { unsupportedParameter } from './error-shape.js'

/**
 * OpenAI request fields Helix does not honour. A field here is refused (400, code
 * unsupported_parameter) when its value would change the answer; the value each accepts is the one
 * that asks for nothing (an absent, null or default value). Fields in neither these tables nor the
 * schemas are ignored (user, store, metadata, service_tier, parallel_tool_calls, …): they change
 * nothing about the tokens Helix returns. docs/api.md lists both.
 */
type Harmless = (value: unknown) => boolean

const absent: Harmless = (v) => v === undefined || v === null
const emptyList: Harmless = (v) => absent(v) || (Array.isArray(v) && v.length === 0)
const emptyObject: Harmless = (v) =>
  absent(v) || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0)

const BOTH: Readonly<Record<string, Harmless>> = {
  logit_bias: emptyObject,
  // A choice of several completions server-side; n is how Helix returns several.
  best_of: (v) => absent(v) || v === 1,
}

export const CHAT_REFUSED: Readonly<Record<string, Harmless>> = {
  ...BOTH,
  tools: emptyList,
  tool_choice: (v) => absent(v) || v === 'none',
  functions: emptyList,
  function_call: (v) => absent(v) || v === 'none',
  response_format: (v) => absent(v) || (v as { type?: unknown }).type === 'text',
  audio: absent,
  modalities: (v) => absent(v) || (Array.isArray(v) && v.every((m) => m === 'text')),
  prediction: absent,
  web_search_options: absent,
  reasoning_effort: absent,
  verbosity: absent,
}

export const COMPLETION_REFUSED: Readonly<Record<string, Harmless>> = {
  ...BOTH,
  suffix: (v) => absent(v) || v === '',
  echo: (v) => absent(v) || v === false,
}

/** Throws unsupported_parameter for the first refused field that asks for something. */
export function refuseUnsupported(body: object, table: Readonly<Record<string, Harmless>>): void {
  const fields = body as Record<string, unknown>
  for (const [field, harmless] of Object.entries(table)) {
    if (!harmless(fields[field])) throw unsupportedParameter(field)
  }
}
