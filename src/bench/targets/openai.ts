import { UserError } from '../../shared/errors.js'
import type { RequestPlan } from '../types.js'
import { endpointPath, parseBaseUrl } from './endpoint.js'
import type { TargetOptions } from './target-options.js'

const DEFAULT_PROMPT = 'Write one sentence about the sea.'

/** POST /v1/embeddings or a streaming POST /v1/chat/completions for --model (OpenAI API). */
export function openaiPlan(options: TargetOptions, auth: Record<string, string>): RequestPlan {
  if (!options.model) {
    throw new UserError('BENCH_MODEL_REQUIRED', `--model is required for --target ${options.kind}`, {
      hint: 'Pass --model with the model id the server lists at /v1/models.',
    })
  }
  const { origin, basePath } = parseBaseUrl(options.url)
  const chat = options.kind === 'openai-chat'
  const body = chat
    ? {
        model: options.model,
        messages: [{ role: 'user', content: options.prompt ?? DEFAULT_PROMPT }],
        max_tokens: options.maxTokens,
        stream: true,
      }
    : { model: options.model, input: options.prompt ?? DEFAULT_PROMPT }
  return {
    origin,
    path: endpointPath(basePath, chat ? '/v1/chat/completions' : '/v1/embeddings'),
    method: 'POST',
    headers: {
      ...auth,
      'content-type': 'application/json',
      ...(chat ? { accept: 'text/event-stream' } : {}),
      ...options.headers,
    },
    body: Buffer.from(JSON.stringify(body)),
    stream: chat ? 'sse' : 'none',
    ...(options.tls ? { tls: options.tls } : {}),
  }
}
