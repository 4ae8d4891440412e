import type { FastifyError } from 'fastify'
import { isHelixError, UserError } from '../../shared/errors.js'

/**
 * OpenAI's error shape for the /v1 routes: `{"error":{"message","type","param","code"}}`, with the
 * status the one HTTP table gives (plugins/errors.ts builds both shapes from the same answer).
 * OpenAI's own clients read `type` and `code`; every other path keeps `{"error":"…"}`.
 */
export interface OpenAIError {
  error: { message: string; type: string; param: string | null; code: string | null }
}

/** Whether a request path answers errors in OpenAI's shape. */
export function isOpenAIPath(url: string): boolean {
  return url === '/v1' || url.startsWith('/v1/') || url.startsWith('/v1?')
}

/** A refusal that names the body field at fault and OpenAI's code for it. */
export function paramError(message: string, param: string, code: string, hint?: string): UserError {
  return new UserError('INVALID_INPUT', message, {
    ...(hint ? { hint } : {}),
    details: { param, openaiCode: code },
  })
}

/** A field OpenAI defines that Helix does not honour (tools, logit_bias, …). */
export function unsupportedParameter(param: string, why?: string): UserError {
  return paramError(
    `'${param}' is not supported by this server${why ? `: ${why}` : ''}.`,
    param,
    'unsupported_parameter',
    'Remove the field; docs/api.md lists the fields Helix refuses and ignores.',
  )
}

/** A supported field with a value Helix does not honour (a tool message, an image part, …). */
export function unsupportedValue(param: string, message: string): UserError {
  return paramError(message, param, 'unsupported_value')
}

const TYPE_BY_STATUS: Readonly<Record<number, string>> = {
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  429: 'rate_limit_error',
}

/** OpenAI's codes for the Helix codes its clients know; others are the Helix code in lower case. */
const CODE_BY_HELIX: Readonly<Record<string, string>> = {
  MODEL_NOT_FOUND: 'model_not_found',
  VERSION_NOT_FOUND: 'model_not_found',
  MODEL_WRONG_TASK: 'model_not_supported',
  CONTEXT_TOO_LONG: 'context_length_exceeded',
  RATE_LIMITED: 'rate_limit_exceeded',
  QUEUE_FULL: 'server_overloaded',
  UNAUTHENTICATED: 'invalid_api_key',
  FORBIDDEN: 'insufficient_permissions',
  MALFORMED_JSON: 'invalid_json',
  BODY_TOO_LARGE: 'request_too_large',
  INVALID_INPUT: 'invalid_value',
}

/** The body field a context error concerns on each route. */
function promptParam(path: string): string | null {
  if (path.startsWith('/v1/chat/')) return 'messages'
  if (path.startsWith('/v1/completions')) return 'prompt'
  if (path.startsWith('/v1/embeddings')) return 'input'
  return null
}

interface AjvError {
  keyword: string
  instancePath: string
  message?: string
  params?: { missingProperty?: string; allowedValues?: unknown[]; type?: string }
}

/** `/messages/0/role` → `messages.[0].role`, as OpenAI names nested fields. */
export function paramOfPointer(pointer: string): string {
  return pointer
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      const name = s.replace(/~1/g, '/').replace(/~0/g, '~')
      return /^\d+$/.test(name) ? `[${name}]` : name
    })
    .join('.')
}

const TYPE_KEYWORDS = new Set(['type', 'anyOf', 'oneOf'])

const CODE_BY_KEYWORD: Readonly<Record<string, string>> = {
  required: 'missing_required_parameter',
  type: 'invalid_type',
  anyOf: 'invalid_type',
}

/** A schema validation failure: the field at fault, OpenAI's code, and a message naming the field. */
function validationError(errors: AjvError[]): { param: string | null; code: string; message: string } {
  // A failed union reports each branch, then the anyOf itself. A branch that failed on something other
  // than the type (a range, a length) had the right type: its error says what is wrong; when every
  // branch failed on the type, the anyOf names the field.
  const first =
    errors.find((e) => !TYPE_KEYWORDS.has(e.keyword)) ??
    errors.find((e) => e.keyword === 'anyOf') ??
    errors[0]
  const missing = first?.params?.missingProperty
  const pointer = `${first?.instancePath ?? ''}${missing ? `/${missing}` : ''}`
  const param = paramOfPointer(pointer) || null
  const code = CODE_BY_KEYWORD[first?.keyword ?? ''] ?? 'invalid_value'
  let message: string
  if (missing) message = `Missing required parameter: '${param}'.`
  else if (first?.keyword === 'anyOf') message = `Invalid type for '${param}': no accepted form matches.`
  else if (first?.keyword === 'type')
    message = `Invalid type for '${param ?? 'body'}': expected ${first.params?.type ?? 'another type'}.`
  else {
    const allowed = first?.params?.allowedValues
    message = `Invalid value for '${param ?? 'body'}': ${first?.message ?? 'invalid'}${allowed ? ` (${allowed.join(', ')})` : ''}.`
  }
  return { param, code, message }
}

/**
 * The OpenAI-shaped body of an error answer. `status` and `message` are the one table's (what the
 * KServe shape would say); this adds the type, the field at fault and a code.
 */
export function openaiErrorBody(
  err: unknown,
  answer: { status: number; code: string; message: string },
  path: string,
): OpenAIError {
  const type =
    TYPE_BY_STATUS[answer.status] ?? (answer.status >= 500 ? 'server_error' : 'invalid_request_error')
  const validation = (err as Partial<FastifyError> | undefined)?.validation
  if (!isHelixError(err) && validation?.length) {
    const v = validationError(validation as AjvError[])
    return { error: { message: v.message, type, param: v.param, code: v.code } }
  }
  let param: string | null = null
  let code = CODE_BY_HELIX[answer.code] ?? answer.code.toLowerCase()
  if (isHelixError(err)) {
    const details = err.details ?? {}
    if (typeof details.param === 'string') param = details.param
    if (typeof details.openaiCode === 'string') code = details.openaiCode
    if (err.code === 'MODEL_NOT_FOUND' || err.code === 'VERSION_NOT_FOUND' || err.code === 'MODEL_WRONG_TASK')
      param = 'model'
    if (err.code === 'CONTEXT_TOO_LONG') param = promptParam(path)
    // Quotas refuse with the same code as rate limits; OpenAI's clients tell the two apart by code.
    if (err.code === 'RATE_LIMITED' && err.message.includes('quota-')) code = 'insufficient_quota'
  }
  return { error: { message: answer.message, type, param, code } }
}
