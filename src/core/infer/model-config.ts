import { type Static, Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parse as parseYaml } from 'yaml'
import { schemaMessage } from '../../shared/schema-message.js'

const VersionNumber = Type.Integer({ minimum: 1 })

/** One input or output of a model as config.yaml declares it (Triton's config.pbtxt fields). */
const TensorConfig = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    datatype: Type.Union(
      ['BOOL', 'UINT8', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64'].map((d) =>
        Type.Literal(d),
      ),
    ),
    dims: Type.Array(Type.Integer({ minimum: -1 })),
  },
  { additionalProperties: false },
)

/**
 * models/<name>/config.yaml, modelled on Triton's config.pbtxt. Every field is optional: what is
 * left out is derived from the ONNX graph (inputs, outputs, batch dimension) or defaulted.
 */
export const ModelConfigSchema = Type.Object(
  {
    /**
     * Inputs of the model, in the order its forward() takes them. Needed for formats that carry no
     * names (PyTorch TorchScript); an ONNX model's graph names its own. `dims` leave out the batch
     * dimension unless max_batch_size is 0; -1 marks a dynamic dimension.
     */
    inputs: Type.Optional(Type.Array(TensorConfig, { minItems: 1 })),
    /**
     * Outputs of the model: a single tensor is the first, a tuple maps by position, a dict by name.
     */
    outputs: Type.Optional(Type.Array(TensorConfig, { minItems: 1 })),
    /** Largest batch the dynamic batcher forms; 0 turns batching off. Default 32 when dim 0 is dynamic. */
    max_batch_size: Type.Optional(Type.Integer({ minimum: 0, maximum: 65536 })),
    /** How long the first request of a batch may wait for others, in milliseconds. Default 2. */
    max_queue_delay_ms: Type.Optional(Type.Number({ minimum: 0, maximum: 60_000 })),
    /** Batch sizes worth dispatching at once, without waiting for the delay (Triton's preferred_batch_size). */
    preferred_batch_sizes: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1 })),
    /**
     * Sessions per loaded version; up to this many batches are dispatched at once. Default: 2 for
     * worker-thread CPU sessions (one computes while the other takes the next batch), 1 on a GPU.
     * Inline sessions (worker_threads: false) compute on the event loop, so there more instances cost
     * memory, not speed.
     */
    instances: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    /** Device policy: cuda (no fallback), webgpu, cpu, or auto (CUDA when a GPU is usable, else the CPU, logged). */
    device: Type.Optional(
      Type.Union([Type.Literal('auto'), Type.Literal('cuda'), Type.Literal('webgpu'), Type.Literal('cpu')]),
    ),
    /** Pin the model to this GPU index; without it the GPU with the most free memory is chosen. */
    gpu: Type.Optional(Type.Integer({ minimum: 0 })),
    /** GPU memory the model may take, in MiB; placement refuses GPUs with less free. */
    memory_budget_mb: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Which versions to load: the newest N (default 1), all, or a list. */
    version_policy: Type.Optional(
      Type.Union([
        Type.Object({ latest: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
        Type.Object({ all: Type.Literal(true) }, { additionalProperties: false }),
        Type.Object(
          { specific: Type.Array(VersionNumber, { minItems: 1 }) },
          { additionalProperties: false },
        ),
      ]),
    ),
    /** Weighted split of unversioned requests between loaded versions (A/B tests). */
    traffic: Type.Optional(
      Type.Array(
        Type.Object(
          { version: VersionNumber, weight: Type.Number({ minimum: 0 }) },
          { additionalProperties: false },
        ),
        {
          minItems: 1,
        },
      ),
    ),
    /** Request header whose value keeps a caller on one version of the split (else the API key is used). */
    sticky_header: Type.Optional(Type.String({ minLength: 1, pattern: '^[A-Za-z0-9-]+$' })),
    /** A version that gets a copy of every unversioned request; its answers are discarded. */
    shadow: Type.Optional(Type.Object({ version: VersionNumber }, { additionalProperties: false })),
    /** Requests run on each new version before it takes traffic; default: one of zeros. */
    warmup: Type.Optional(
      Type.Array(
        Type.Object(
          {
            inputs: Type.Record(
              Type.String(),
              Type.Object(
                {
                  shape: Type.Array(Type.Integer({ minimum: 0 })),
                  /** Flat row-major values; zeros when left out. */
                  data: Type.Optional(Type.Array(Type.Union([Type.Number(), Type.String(), Type.Boolean()]))),
                },
                { additionalProperties: false },
              ),
            ),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    /** Response cache keyed by a hash of the inputs (off by default: only for deterministic models). */
    cache: Type.Optional(
      Type.Object(
        {
          enabled: Type.Boolean(),
          /** Most entries kept (least recently used are evicted). */
          max_entries: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    /**
     * Run each instance in a worker thread: the event loop stays free during compute (deadlines
     * fire on time, requests keep being parsed, the next batch is handed over while one computes)
     * and instances run in parallel. Default: on for the CPU provider, off on GPUs; `false` opts out.
     */
    worker_threads: Type.Optional(Type.Boolean()),
    /**
     * Where each instance runs (helix.yaml models.isolation when absent): `thread`, a worker thread of
     * the daemon (tensors move without copies); `process`, a worker process of its own (tensors are
     * copied through /dev/shm), so a native crash inside onnxruntime (SIGSEGV, SIGBUS, abort) costs that
     * instance, which reopens, instead of the whole daemon. ONNX and text embedding models.
     */
    isolation: Type.Optional(Type.Union([Type.Literal('thread'), Type.Literal('process')])),
    /**
     * Let onnxruntime's thread pools busy-wait between runs (onnxruntime's own default). Off by
     * default: spinning threads steal the cores the HTTP thread and clients need.
     */
    allow_spinning: Type.Optional(Type.Boolean()),
    /**
     * Seconds one batch may run in a worker thread before the thread counts as hung: its requests
     * fail with 503 (MODEL_INSTANCE_CRASHED), the thread ends once onnxruntime returns, and the
     * instance reopens on a live thread. Absent: no limit.
     */
    run_timeout_s: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 86_400 })),
    /** onnxruntime intra-op threads per session (0 or absent: onnxruntime's default). */
    intra_op_threads: Type.Optional(Type.Integer({ minimum: 0, maximum: 1024 })),
    /** onnxruntime inter-op threads per session. */
    inter_op_threads: Type.Optional(Type.Integer({ minimum: 0, maximum: 1024 })),
    /**
     * Text models (a Hugging Face–format folder as the version): the task and the limits of the
     * generation scheduler and the embeddings batcher. Everything is derived or defaulted when absent.
     */
    text: Type.Optional(
      Type.Object(
        {
          /** embeddings | chat | text-classification; inferred from the graph when unambiguous. */
          task: Type.Optional(
            Type.Union([
              Type.Literal('embeddings'),
              Type.Literal('chat'),
              Type.Literal('text-classification'),
            ]),
          ),
          /** Longest prompt + completion in tokens; default the config.json max_position_embeddings (≤ 32768). */
          max_context: Type.Optional(Type.Integer({ minimum: 2, maximum: 1_048_576 })),
          /** Most new tokens one request may ask for (default 1024, never past the context). */
          max_new_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
          /** Sequences decoded together in the running batch (default 16). */
          max_sequences: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
          /** Requests waiting for a place in the running batch before 429 (default 256). */
          max_waiting: Type.Optional(Type.Integer({ minimum: 1 })),
          /** Tokens per forward pass: prefill chunks and embedding batches, padding included (default 4096). */
          max_batch_tokens: Type.Optional(Type.Integer({ minimum: 16 })),
          /** Memory the running batch's KV cache may take, in MiB (default 1024). */
          kv_cache_mb: Type.Optional(Type.Integer({ minimum: 1 })),
          /** Embedding pooling; default from 1_Pooling/config.json, else mean. */
          pooling: Type.Optional(Type.Union([Type.Literal('mean'), Type.Literal('cls')])),
          /** L2-normalise embeddings (default true). */
          normalize: Type.Optional(Type.Boolean()),
          /** The model was trained to allow shorter embeddings (Matryoshka): `dimensions` may ask for them. */
          truncatable_dimensions: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    queue: Type.Optional(
      Type.Object(
        {
          /** Requests waiting per version before new ones get QUEUE_FULL (429). */
          max_size: Type.Optional(Type.Integer({ minimum: 1 })),
          /** Default per-request deadline in milliseconds (0: none). */
          timeout_ms: Type.Optional(Type.Integer({ minimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)

export type ModelConfig = Static<typeof ModelConfigSchema>

/** A config.yaml that cannot be used; the message names the file and the field. */
export class ModelConfigError extends Error {
  override name = 'ModelConfigError'
}

/** Parses and validates config.yaml text; an empty file is an empty config. */
export function parseModelConfig(text: string, source = 'config.yaml'): ModelConfig {
  let raw: unknown
  try {
    raw = parseYaml(text) ?? {}
  } catch (err) {
    throw new ModelConfigError(`${source} is not valid YAML: ${(err as Error).message.split('\n')[0]}`)
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelConfigError(`${source} must hold a mapping of settings`)
  }
  const first = Value.Errors(ModelConfigSchema, raw).First()
  if (first) {
    const where = first.path.replace(/^\//, '').replaceAll('/', '.') || '(root)'
    // Typos are the usual cause: name the unknown key instead of TypeBox's generic message.
    const unknown = Object.keys(raw).find((k) => !(k in ModelConfigSchema.properties))
    const message = unknown ? `unknown setting '${unknown}'` : `${where}: ${schemaMessage(first)}`
    throw new ModelConfigError(`${source}: ${message}`)
  }
  const config = raw as ModelConfig
  if (config.shadow && config.traffic?.some((t) => t.version === config.shadow?.version && t.weight > 0)) {
    throw new ModelConfigError(
      `${source}: shadow version ${config.shadow.version} must not also take traffic`,
    )
  }
  if (config.traffic?.every((t) => t.weight === 0)) {
    throw new ModelConfigError(`${source}: traffic weights must not all be 0`)
  }
  return config
}
