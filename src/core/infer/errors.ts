import { Failure, firstLine, type HelixErrorOptions, UserError } from '../../shared/errors.js'

/**
 * The errors the inference core raises, one constructor per code of the ModelService contract
 * (types.ts). The HTTP layer maps codes to statuses in one table; nothing here knows about HTTP.
 */

/** The queue of a model version is full (429 + Retry-After). */
export class QueueFullError extends Failure {
  /** Seconds after which a retry is likely to be accepted, estimated from the work ahead. */
  readonly retryAfterSeconds: number

  constructor(message: string, retryAfterSeconds: number, options: HelixErrorOptions = {}) {
    super('QUEUE_FULL', message, {
      hint: `The model is overloaded; retry after ${retryAfterSeconds} s or raise queue.max_size in its config.yaml.`,
      ...options,
      details: { retryAfterSeconds, ...options.details },
    })
    this.retryAfterSeconds = retryAfterSeconds
  }
}

export function modelNotFound(model: string): UserError {
  return new UserError('MODEL_NOT_FOUND', `Model '${model}' is not in the model repository.`, {
    hint: 'List the models with `helix models list` or POST /v2/repository/index; add one with `helix models add`.',
  })
}

export function versionNotFound(model: string, version: string, known: string[]): UserError {
  return new UserError(
    'VERSION_NOT_FOUND',
    `Model '${model}' has no version '${version}'${known.length ? ` (loaded: ${known.join(', ')})` : ''}.`,
    {
      hint: 'Pick one of the versions listed by GET /v2/models/{model}, or change version_policy in its config.yaml.',
    },
  )
}

export function invalidInput(message: string, hint?: string): UserError {
  return new UserError('INVALID_INPUT', message, {
    hint: hint ?? 'Check the tensor names, shapes and datatypes against GET /v2/models/{model}.',
  })
}

export function modelNotReady(model: string, reason: string): Failure {
  return new Failure('MODEL_NOT_READY', `Model '${model}' is not ready: ${reason}.`, {
    hint: 'Wait for it to load, or see the reason in POST /v2/repository/index and fix the model.',
  })
}

/**
 * A request that was running on a worker thread that exited or was given up (a run past the
 * model's run_timeout_s): retrying is safe, the model's instance is being reopened on a live thread.
 */
export function modelInstanceCrashed(model: string, reason: string): Failure {
  return new Failure(
    'MODEL_INSTANCE_CRASHED',
    `Model '${model}' lost this request: ${reason}; its instance is being reopened.`,
    {
      hint: 'Retry the request; if it keeps happening, see the daemon log for the model (a run that hangs or exhausts memory).',
    },
  )
}

export function inferTimeout(model: string, timeoutMs: number, where: 'queued' | 'running'): Failure {
  return new Failure('INFER_TIMEOUT', `Inference on '${model}' timed out after ${timeoutMs} ms (${where}).`, {
    hint: 'Raise the request timeout, lower the load, or add instances in the model config.yaml.',
  })
}

export function cancelled(model: string): Failure {
  return new Failure('CANCELLED', `Inference on '${model}' was cancelled by the client.`)
}

export function backendFailed(model: string, cause: unknown): Failure {
  const message = cause instanceof Error ? cause.message : String(cause)
  return new Failure('BACKEND_FAILED', `Model '${model}' failed to run: ${firstLine(message)}`, {
    hint: 'The input may be outside what the model supports; run with --verbose and check the daemon log.',
    cause,
  })
}

export function modelLoadFailed(model: string, reasons: string[]): Failure {
  return new Failure('MODEL_LOAD_FAILED', `Model '${model}' failed to load: ${reasons.join('; ')}`, {
    hint: 'Fix or replace the model files (or its config.yaml) and load it again; versions that were serving keep serving.',
    details: { reasons },
  })
}

/** A text route asked a model that serves another task (or tensors only). */
export function wrongTask(model: string, serves: string, wanted: string | undefined): UserError {
  return new UserError(
    'MODEL_WRONG_TASK',
    `Model '${model}' serves ${serves}${wanted ? `, not ${wanted}` : ''}.`,
    { hint: 'List the text models and their tasks with GET /v1/models.' },
  )
}

/** A prompt (with the completion it asks for) longer than the model's context. */
export function contextTooLong(model: string, tokens: number, limit: number): UserError {
  return new UserError(
    'CONTEXT_TOO_LONG',
    `The request needs ${tokens} tokens but model '${model}' has a context of ${limit}.`,
    { hint: 'Shorten the prompt or ask for fewer tokens (max_tokens).' },
  )
}
