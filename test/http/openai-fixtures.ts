import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { createModelService, type HelixModelService } from '../../src/core/infer/model-service.js'
import { type BuildAppOptions, buildApp } from '../../src/http/app.js'
import { writeChatModel, writeEmbeddingModel } from '../helpers/text-models.js'

/** Where the generated text models of a test file live: a repository with a chat and an embedding model. */
export interface TextRepository {
  root: string
  modelsDir: string
  /** models/chat/1: a Qwen3-shaped chat model (seed 7). */
  chatDir: string
  /** models/embed/1: a BERT-shaped embedding model (mean pooling, normalised; seed 3). */
  embedDir: string
  cleanup(): Promise<void>
}

/**
 * Writes the text models into `modelsDir` (a fresh temporary one by default): `chat` (with a second,
 * different version when `versions` is 2) and `embed`, plus any extra chat models named in `extraChats`.
 */
export async function textRepository(
  options: { modelsDir?: string; versions?: 1 | 2; extraChats?: string[] } = {},
): Promise<TextRepository> {
  const root = await mkdtemp(join(tmpdir(), 'helix-openai-'))
  const modelsDir = options.modelsDir ?? join(root, 'models')
  const chatDir = join(modelsDir, 'chat', '1')
  const embedDir = join(modelsDir, 'embed', '1')
  await writeChatModel(chatDir, { seed: 7 })
  if (options.versions === 2) {
    await writeChatModel(join(modelsDir, 'chat', '2'), { seed: 8 })
    // Version 2 is the default; version 1 stays addressable as chat:1.
    await writeFile(join(modelsDir, 'chat', 'config.yaml'), 'version_policy:\n  all: true\n')
  }
  for (const name of options.extraChats ?? []) await writeChatModel(join(modelsDir, name, '1'), { seed: 7 })
  await writeEmbeddingModel(embedDir, { seed: 3 })
  return {
    root,
    modelsDir,
    chatDir,
    embedDir,
    cleanup: () => rm(root, { recursive: true, force: true }),
  }
}

export interface TextApp {
  app: FastifyInstance
  service: HelixModelService
  repo: TextRepository
  close(): Promise<void>
}

/** A built app (no auth) over a real model service on a fresh text repository. */
export async function textApp(
  options: Partial<BuildAppOptions> & { versions?: 1 | 2; extraChats?: string[] } = {},
): Promise<TextApp> {
  const { versions, extraChats, ...appOptions } = options
  const repo = await textRepository({
    ...(versions ? { versions } : {}),
    ...(extraChats ? { extraChats } : {}),
  })
  const service = await createModelService({ repositoryDir: repo.modelsDir, defaultDevice: 'cpu' })
  const app = await buildApp({ service, ...appOptions })
  return {
    app,
    service,
    repo,
    close: async () => {
      await app.close()
      await service.close()
      await repo.cleanup()
    },
  }
}

export interface LogprobEntry {
  token: string
  logprob: number
  bytes: number[]
  top_logprobs: { token: string; logprob: number; bytes: number[] }[]
}

/** One streamed choice of a chat or text completion chunk (the fields tests read). */
export interface ChunkChoice {
  index: number
  delta: { role?: string; content?: string }
  text: string
  logprobs: { content: LogprobEntry[] } | null
  finish_reason: string | null
}

/** One chunk of a chat or text completion stream. */
export interface Chunk {
  id: string
  object: string
  model: string
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null
  choices: ChunkChoice[]
}

/** The chunks of a stream that ended with [DONE] (which is dropped). */
export function sseChunks(text: string): Chunk[] {
  const events = sseData(text)
  if (events.at(-1) !== '[DONE]') throw new Error('the stream does not end with data: [DONE]')
  return events.slice(0, -1) as Chunk[]
}

/** Resolves once a generation on `model` has had its first token (its answer, a stream, has begun). */
export async function firstTokenSeen(app: FastifyInstance, model: string): Promise<void> {
  for (;;) {
    const { values } = await app.metrics.textFirstToken.get()
    const count = values.find(
      (v) => v.metricName === 'helix_text_time_to_first_token_seconds_count' && v.labels.model === model,
    )
    if (count && count.value > 0) return
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** The `data:` payloads of a server-sent event stream, in order ('[DONE]' stays a string). */
export function sseData(text: string): unknown[] {
  const events = text.split('\n\n')
  // A well-formed stream ends with a blank line: nothing may follow the last event.
  if (events.at(-1) !== '')
    throw new Error(`the stream does not end with a blank line: ${JSON.stringify(text.slice(-80))}`)
  return events.slice(0, -1).map((event) => {
    if (!event.startsWith('data: ')) throw new Error(`not a data event: ${JSON.stringify(event)}`)
    const data = event.slice('data: '.length)
    return data === '[DONE]' ? data : JSON.parse(data)
  })
}

/** Little-endian float32 values of an OpenAI base64 embedding. */
export function float32FromBase64(base64: string): number[] {
  const bytes = Buffer.from(base64, 'base64')
  return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4))
}
