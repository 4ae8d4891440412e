import { readFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import * as ort from 'onnxruntime-node'
import type { Backend, BackendDescription, DevicePolicy } from '../backends/backend.js'
import { planProviders, providerFailure } from '../backends/execution-provider.js'
import { BackendLoadError, OnnxBackend, sessionOptionsFor } from '../backends/onnx-backend.js'
import { inlineSession, type OnnxSession } from '../backends/onnx-session.js'
import { specFromMetadata } from '../backends/onnx-tensors.js'
import type { WorkerPool } from '../backends/worker-pool.js'
import type { Isolation } from '../backends/worker-session.js'
import type { GpuDiscovery } from '../gpu/nvidia-smi.js'
import type { GpuReservations } from '../gpu/placement.js'
import { contextTooLong, invalidInput, wrongTask } from '../infer/errors.js'
import type { ModelConfig } from '../infer/model-config.js'
import type { Tensor } from '../infer/types.js'
import type { CoreLogger } from '../logger.js'
import { decoderShape, KvBatch } from './decoder.js'
import { Embedder, normalize, type Pooling } from './embedder.js'
import { GenerationScheduler } from './generation-scheduler.js'
import { TOKENIZER_FILE } from './hf-folder.js'
import { TextTokenizer } from './text-tokenizer.js'
import type {
  ChatMessage,
  EmbedRequest,
  EmbedResult,
  GenerateRequest,
  GenerationEvent,
  GenerationStats,
  TextEngine,
  TextModelInfo,
  TextTask,
} from './types.js'

const DEFAULTS = {
  maxNewTokens: 1024,
  maxSequences: 16,
  maxWaiting: 256,
  maxBatchTokens: 4096,
  kvCacheMiB: 1024,
  contextCap: 32_768,
}

/**
 * Prefill logits are [rows, tokens, vocab] float32 (exports compute every position's, though only the
 * last is sampled): one pass's logits stay under this many bytes. Measured on a 152k vocabulary,
 * 16 prompts of 16 tokens took 850 ms in one pass and ~400 ms in passes of 64 MiB of logits.
 */
const PREFILL_LOGITS_BYTES = 64 * 1024 * 1024

export interface TextBackendOptions {
  /** …/<version>/onnx/model.onnx */
  modelPath: string
  config: ModelConfig
  device: DevicePolicy
  gpu?: number
  label: string
  logger: CoreLogger
  discoverGpus: () => Promise<GpuDiscovery>
  reservations: GpuReservations
  /** The worker threads embedding models compute in (the process-wide pool when absent). */
  workerPool?: WorkerPool
  /** Where an embedding model's encoder runs (config isolation, else helix.yaml models.isolation). */
  isolation?: Isolation
  /**
   * Called when an embedding model's encoder gives up: its worker threads kept being lost (see
   * OnnxBackend). The lifecycle then marks the version UNAVAILABLE.
   */
  onUnavailable?: (reason: string) => void
}

async function readJson(path: string, required: boolean): Promise<Record<string, unknown> | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new BackendLoadError(`cannot read ${path}: ${(err as Error).message}`)
  }
  try {
    return JSON.parse(text) as Record<string, unknown>
  } catch (err) {
    throw new BackendLoadError(`${path} is not valid JSON: ${(err as Error).message}`)
  }
}

function eosIds(...sources: (Record<string, unknown> | undefined)[]): Set<number> {
  const ids = new Set<number>()
  for (const source of sources) {
    const value = source?.eos_token_id
    for (const id of Array.isArray(value) ? value : [value]) if (typeof id === 'number') ids.add(id)
  }
  return ids
}

/**
 * A Hugging Face–format ONNX folder as one model version: a decoder with a KV cache (chat and
 * completions through the continuous-batching scheduler) or an encoder (embeddings batched by
 * tokens). KServe infer still reaches the raw graph through `run`.
 */
export class TextBackend implements Backend {
  private session?: ort.InferenceSession
  /**
   * Embedding models: their encoder in a worker thread (the inline session is released), through an
   * OnnxBackend, so an instance whose thread is lost (a crash, a run past run_timeout_s) reopens on a
   * live one as an ONNX model's does.
   */
  private encoder?: OnnxBackend
  private description?: BackendDescription
  private engine?: HfTextEngine

  constructor(private readonly options: TextBackendOptions) {}

  get text(): TextEngine | undefined {
    return this.engine
  }

  async load(): Promise<void> {
    const { options } = this
    const dir = dirname(dirname(options.modelPath))
    const config = (await readJson(join(dir, 'config.json'), true)) as Record<string, unknown>
    const tokenizerJson = (await readJson(join(dir, TOKENIZER_FILE), true)) as Record<string, unknown>
    const tokenizerConfig = (await readJson(join(dir, 'tokenizer_config.json'), false)) ?? {}
    const generationConfig = await readJson(join(dir, 'generation_config.json'), false)
    const poolingConfig = await readJson(join(dir, '1_Pooling', 'config.json'), false)
    let tokenizer: TextTokenizer
    try {
      tokenizer = new TextTokenizer(tokenizerJson, tokenizerConfig)
    } catch (err) {
      throw new BackendLoadError(`tokenizer.json cannot be used: ${(err as Error).message}`)
    }
    const discovery = await options.discoverGpus()
    const plan = planProviders(options.device, discovery, { pinned: options.gpu }, options.reservations)
    if (plan.refusal) throw new BackendLoadError(plan.refusal)
    let fallbackReason = plan.skippedReason
    let lastError = ''
    for (const attempt of plan.attempts) {
      try {
        this.session = await ort.InferenceSession.create(
          options.modelPath,
          sessionOptionsFor(
            {
              intraOpThreads: options.config.intra_op_threads,
              interOpThreads: options.config.inter_op_threads,
              allowSpinning: options.config.allow_spinning,
            },
            attempt,
            false,
            1,
          ),
        )
      } catch (err) {
        lastError = providerFailure(attempt, err, discovery)
        if (attempt.executionProvider !== 'cpu' && options.device === 'auto') fallbackReason = lastError
        continue
      }
      if (fallbackReason && attempt.executionProvider === 'cpu' && options.device === 'auto')
        options.logger.warn(
          { model: options.label, fallback: fallbackReason },
          `device auto: running ${options.label} on the CPU`,
        )
      const session = this.session
      try {
        this.description = {
          inputs: session.inputMetadata.map(specFromMetadata),
          outputs: session.outputMetadata.map(specFromMetadata),
          executionProvider: attempt.executionProvider,
          device: attempt.device,
          instances: 1,
          ...(fallbackReason && attempt.executionProvider === 'cpu' ? { fallbackReason } : {}),
        }
        // An encoder computes in a worker thread, so the event loop gathers the next batch meanwhile;
        // a decoder stays inline, where each step's present tensors feed the next without copies.
        const task = options.config.text?.task ?? inferTask(session, config)
        let hosted: OnnxSession | undefined
        if (attempt.executionProvider === 'cpu' && task === 'embeddings') {
          const encoder = new OnnxBackend({
            modelPath: options.modelPath,
            device: 'cpu',
            instances: 1,
            intraOpThreads: options.config.intra_op_threads || availableParallelism(),
            interOpThreads: options.config.inter_op_threads,
            workerThreads: true,
            ...(options.isolation ? { isolation: options.isolation } : {}),
            allowSpinning: options.config.allow_spinning,
            ...(options.config.run_timeout_s ? { runTimeoutMs: options.config.run_timeout_s * 1000 } : {}),
            ...(options.onUnavailable ? { onUnavailable: options.onUnavailable } : {}),
            label: options.label,
            logger: options.logger,
            ...(options.workerPool ? { pool: options.workerPool } : {}),
          })
          this.encoder = encoder
          await encoder.load()
          hosted = {
            inputMetadata: session.inputMetadata,
            outputMetadata: session.outputMetadata,
            run: (inputs, outputNames) => encoder.run(inputs, outputNames),
            release: () => encoder.dispose(),
          }
          this.session = undefined
          await session.release()
        }
        this.engine = new HfTextEngine(session, hosted, {
          config,
          generationConfig,
          poolingConfig,
          tokenizerConfig,
          tokenizer,
          modelConfig: options.config,
          label: options.label,
          logger: options.logger,
        })
      } catch (err) {
        await this.dispose()
        throw err instanceof BackendLoadError ? err : new BackendLoadError((err as Error).message)
      }
      return
    }
    throw new BackendLoadError(lastError)
  }

  async run(inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]> {
    if (this.encoder) return this.encoder.run(inputs, outputNames)
    if (!this.session) throw new Error('backend not loaded')
    return inlineSession(this.session).run(inputs, outputNames)
  }

  async dispose(): Promise<void> {
    const engine = this.engine
    const session = this.session
    const encoder = this.encoder
    this.engine = undefined
    this.session = undefined
    this.encoder = undefined
    await engine?.close()
    await session?.release()
    await encoder?.dispose()
  }

  describe(): BackendDescription {
    if (!this.description) throw new Error('backend not loaded')
    return this.description
  }
}

interface EngineSources {
  config: Record<string, unknown>
  generationConfig?: Record<string, unknown>
  poolingConfig?: Record<string, unknown>
  tokenizerConfig: Record<string, unknown>
  tokenizer: TextTokenizer
  modelConfig: ModelConfig
  label: string
  logger: CoreLogger
}

function inferTask(session: ort.InferenceSession, config: Record<string, unknown>): TextTask | undefined {
  if (session.inputNames.some((n) => n.startsWith('past_key_values.'))) return 'chat'
  const outputs = session.outputNames
  if (outputs.some((n) => ['last_hidden_state', 'token_embeddings', 'sentence_embedding'].includes(n)))
    return 'embeddings'
  if (outputs.includes('logits') && config.id2label) return 'text-classification'
  return undefined
}

/** The TextEngine of one loaded folder. */
class HfTextEngine implements TextEngine {
  readonly info: TextModelInfo
  private readonly tokenizer: TextTokenizer
  private readonly scheduler?: GenerationScheduler
  private readonly embedder?: Embedder
  private readonly eos: Set<number>
  private readonly label: string

  constructor(session: ort.InferenceSession, hosted: OnnxSession | undefined, sources: EngineSources) {
    const { config, modelConfig } = sources
    const text = modelConfig.text ?? {}
    this.label = sources.label
    this.tokenizer = sources.tokenizer
    const inferred = inferTask(session, config)
    const task = text.task ?? inferred
    if (!task)
      throw new BackendLoadError(
        'cannot tell the task of this text model from its graph: set text.task (embeddings, chat or text-classification) in config.yaml',
      )
    if (text.task && inferred && text.task !== inferred)
      throw new BackendLoadError(
        `config.yaml says text.task ${text.task} but the graph is a ${inferred} model`,
      )
    const positions = Number(config.max_position_embeddings ?? sources.tokenizerConfig.model_max_length)
    const contextLength =
      text.max_context ??
      (Number.isFinite(positions) && positions > 0 ? Math.min(positions, DEFAULTS.contextCap) : 2048)
    const maxNewTokens = Math.min(text.max_new_tokens ?? DEFAULTS.maxNewTokens, contextLength - 1)
    this.eos = eosIds(config, sources.generationConfig)
    const eosToken = sources.tokenizerConfig.eos_token
    const eosText = typeof eosToken === 'string' ? eosToken : (eosToken as { content?: string })?.content
    const eosId = eosText ? this.tokenizer.tokenId(eosText) : undefined
    if (eosId !== undefined) this.eos.add(eosId)
    const hidden = Number(config.hidden_size)
    this.info = {
      task,
      contextLength,
      maxNewTokens,
      created: Math.floor(Date.now() / 1000),
      ...(task === 'embeddings' && hidden > 0 ? { dimensions: hidden } : {}),
      ...(text.truncatable_dimensions ? { truncatableDimensions: true } : {}),
    }
    const maxBatchTokens = text.max_batch_tokens ?? DEFAULTS.maxBatchTokens
    if (task === 'chat') {
      let shape: ReturnType<typeof decoderShape>
      try {
        shape = decoderShape(session, config)
      } catch (err) {
        throw new BackendLoadError(`unsupported decoder: ${(err as Error).message}`)
      }
      if (!shape)
        throw new BackendLoadError('a chat model needs past_key_values.* inputs and a logits output')
      if (!this.tokenizer.hasChatTemplate)
        sources.logger.warn(
          { model: sources.label },
          'tokenizer_config.json has no chat_template: only /v1/completions works',
        )
      const prefillTokens = Math.max(
        1,
        Math.min(maxBatchTokens, Math.floor(PREFILL_LOGITS_BYTES / (4 * shape.vocab))),
      )
      this.scheduler = new GenerationScheduler(
        new KvBatch(session, shape),
        shape,
        this.tokenizer,
        {
          maxSequences: text.max_sequences ?? DEFAULTS.maxSequences,
          maxWaiting: text.max_waiting ?? DEFAULTS.maxWaiting,
          prefillTokens,
          kvBudgetBytes: (text.kv_cache_mb ?? DEFAULTS.kvCacheMiB) * 1024 * 1024,
        },
        sources.label,
        sources.logger,
      )
    } else if (task === 'embeddings') {
      const pooling: Pooling =
        text.pooling ?? (sources.poolingConfig?.pooling_mode_cls_token === true ? 'cls' : 'mean')
      this.embedder = new Embedder(hosted ?? inlineSession(session), {
        pooling,
        normalize: text.normalize ?? true,
        maxBatchTokens,
        maxWaiting: text.max_waiting ?? 4096,
        // config.yaml max_queue_delay_ms, as for tensor models; 2 ms by default.
        maxQueueDelayMs: modelConfig.max_queue_delay_ms ?? 2,
        label: sources.label,
      })
    }
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text)
  }

  decode(ids: number[]): string {
    return this.tokenizer.decode(ids)
  }

  renderChat(messages: ChatMessage[]): string {
    if (!this.tokenizer.hasChatTemplate)
      throw invalidInput(
        `Model '${this.label}' has no chat template (tokenizer_config.json chat_template).`,
        'Use /v1/completions with a prompt, or add a chat_template to tokenizer_config.json.',
      )
    return this.tokenizer.renderChat(messages)
  }

  stats(): GenerationStats | undefined {
    return this.scheduler?.stats()
  }

  private promptIds(request: GenerateRequest): number[] {
    if (request.messages) return this.tokenizer.encode(this.renderChat(request.messages))
    const prompt = request.prompt ?? ''
    if (Array.isArray(prompt)) return prompt
    return this.tokenizer.encode(prompt, true)
  }

  generate(request: GenerateRequest): AsyncIterable<GenerationEvent> {
    const scheduler = this.scheduler
    if (!scheduler) throw wrongTask(this.label, this.info.task, 'chat')
    const promptIds = this.promptIds(request)
    if (promptIds.length === 0)
      throw invalidInput('The prompt is empty.', 'Send at least one token of prompt.')
    const sampling = request.sampling ?? {}
    const room = this.info.contextLength - promptIds.length
    if (room < 1) throw contextTooLong(this.label, promptIds.length + 1, this.info.contextLength)
    const asked = sampling.maxTokens
    if (asked !== undefined && promptIds.length + asked > this.info.contextLength)
      throw contextTooLong(this.label, promptIds.length + asked, this.info.contextLength)
    const maxTokens = Math.min(asked ?? this.info.maxNewTokens, this.info.maxNewTokens, room)
    const limit = scheduler.reservation(promptIds.length + maxTokens)
    if (limit > scheduler.stats().kvCacheBudgetBytes)
      throw invalidInput(
        `The request needs ${(limit / 2 ** 20).toFixed(1)} MiB of KV cache, more than model '${this.label}' may use.`,
        'Ask for fewer tokens, or raise text.kv_cache_mb in its config.yaml.',
      )
    return scheduler.submit(
      { promptIds, maxTokens, sampling, key: request.key ?? '', eosTokenIds: this.eos },
      request.signal,
    )
  }

  async embed(request: EmbedRequest): Promise<EmbedResult> {
    const embedder = this.embedder
    if (!embedder) throw wrongTask(this.label, this.info.task, 'embeddings')
    if (request.inputs.length === 0)
      throw invalidInput('input is empty.', 'Send a string or a list of strings.')
    const dims = this.info.dimensions
    if (request.dimensions !== undefined) {
      if (!this.info.truncatableDimensions)
        throw invalidInput(
          `Model '${this.label}' does not support 'dimensions'.`,
          'Leave dimensions out, or set text.truncatable_dimensions: true in config.yaml for a Matryoshka model.',
        )
      if (dims !== undefined && (request.dimensions < 1 || request.dimensions > dims))
        throw invalidInput(`dimensions must be between 1 and ${dims}.`)
    }
    const lists = request.inputs.map((input) =>
      typeof input === 'string' ? this.tokenizer.encode(input, true) : input,
    )
    lists.forEach((ids) => {
      if (ids.length === 0) throw invalidInput('An input is empty.', 'Send non-empty texts.')
      if (ids.length > this.info.contextLength)
        throw contextTooLong(this.label, ids.length, this.info.contextLength)
    })
    const { vectors, timing } = await embedder.embed(lists, request.signal)
    const embeddings =
      request.dimensions !== undefined
        ? vectors.map((v) => normalize(v.slice(0, request.dimensions)))
        : vectors
    return {
      embeddings,
      promptTokens: lists.reduce((n, ids) => n + ids.length, 0),
      timing,
    }
  }

  async close(): Promise<void> {
    this.embedder?.close()
    await this.scheduler?.close()
  }
}
