/**
 * Typed options and results of `helix bench`. The result is what `--json` prints, what
 * `--save-baseline` stores and what the CSV and HTML reporters render.
 */

/** Which API the load is aimed at; decides how the request is built and how responses are read. */
export const TARGET_KINDS = [
  'kserve',
  'openai-embeddings',
  'openai-chat',
  'http',
  'grpc',
  'grpc-stream',
] as const
export type TargetKind = (typeof TARGET_KINDS)[number]

/** The targets spoken over gRPC (inference.GRPCInferenceService) rather than HTTP/1.1. */
export const GRPC_TARGET_KINDS: readonly TargetKind[] = ['grpc', 'grpc-stream']

export function isGrpcTarget(kind: TargetKind): kind is 'grpc' | 'grpc-stream' {
  return GRPC_TARGET_KINDS.includes(kind)
}

/** TLS settings of an https:// target, as PEM text (plain data, so plans can go to worker threads). */
export interface TlsOptions {
  /** CAs to trust; absent: Node's default roots. */
  ca?: string[]
  /** Client certificate and key (mTLS). */
  cert?: string
  key?: string
}

/**
 * One prepared request, replayed unchanged for every call so the generator spends no time building
 * bodies. Plain data, so it can be posted to worker threads.
 */
export interface RequestPlan {
  /** scheme://host:port */
  origin: string
  /** Path and query, starting with '/'. */
  path: string
  method: string
  headers: Record<string, string>
  body?: Uint8Array
  /** https:// only: the CAs to trust and the client certificate. */
  tls?: TlsOptions
  /** 'sse' reads a Server-Sent Events stream and times its tokens; 'none' just drains the body. */
  stream: 'none' | 'sse'
}

/** What the gRPC load checks in every answer (a wrong answer counts as an error, not a success). */
export interface GrpcAnswerCheck {
  /** The output tensors in the order the server lists them, with the raw bytes each must carry. */
  outputs: { name: string; datatype: string; bytes?: number }[]
}

/**
 * One prepared ModelInfer call for the gRPC targets, encoded once (ModelInferRequest bytes, without
 * its `id`, which each call appends). Plain data, so it can be posted to worker threads.
 */
export interface GrpcRequestPlan {
  protocol: 'grpc'
  /** host:port as the channel dials it. */
  target: string
  /** 'unary': ModelInfer per call; 'stream': ModelStreamInfer, one stream per lane, answers in order. */
  method: 'unary' | 'stream'
  /** Metadata sent with every call (authorization: Bearer, -H headers), names lower-case. */
  metadata: Record<string, string>
  /** The encoded ModelInferRequest without an id. */
  request: Uint8Array
  check: GrpcAnswerCheck
  /**
   * HTTP/2 connections (channels) the calls share, lanes dealt round-robin over them; each worker
   * thread opens its part.
   */
  channels: number
  /** Absent: plaintext (h2c); present: TLS with these CAs and client certificate. */
  tls?: TlsOptions
}

/** What a step replays: an HTTP/1.1 request or a gRPC call. */
export type LoadPlan = RequestPlan | GrpcRequestPlan

export function isGrpcPlan(plan: LoadPlan): plan is GrpcRequestPlan {
  return (plan as GrpcRequestPlan).protocol === 'grpc'
}

/** How load is applied in one step. */
export type LoadShape = { mode: 'closed'; concurrency: number } | { mode: 'open'; rate: number }

/** When a step ends: after a wall-clock duration or a number of requests. */
export type StopRule = { durationMs: number } | { requests: number }

export interface StepPlan {
  load: LoadShape
  stop: StopRule
  warmupMs: number
  /** Connections an open loop deals its arrivals over; a closed loop uses one per client. */
  connections: number
  /** Per-request timeout. */
  timeoutMs: number
  /** Worker threads that share the load; 0 runs in the main thread. */
  workers: number
}

/** Latency percentiles in milliseconds. */
export interface LatencySummary {
  count: number
  mean: number
  min: number
  p50: number
  p90: number
  p95: number
  p99: number
  p999: number
  max: number
}

/** Mean and p99 of a server-reported duration (Server-Timing), in milliseconds. */
export interface ServerDuration {
  count: number
  mean: number
  p99: number
}

/** One second of a step: how many requests finished and how fast. */
export interface TimelinePoint {
  /** Seconds since the step started measuring. */
  second: number
  requests: number
  errors: number
  p50: number
  p99: number
}

export interface StepResult {
  /** 'c=8' for a closed loop step, 'rate=100' for an open loop step. */
  label: string
  mode: 'closed' | 'open'
  concurrency?: number
  /** Target arrival rate (open loop), requests per second. */
  rate?: number
  /** Successful requests per second over the measured window. */
  throughput: number
  requests: number
  successes: number
  errorCount: number
  /** Errors by kind: 'status 429', 'ECONNRESET', 'timeout', … */
  errors: Record<string, number>
  durationMs: number
  latency: LatencySummary
  /** Open loop only: latency is measured from the intended send time (coordinated-omission corrected). */
  correctedForCoordinatedOmission: boolean
  server?: { queue?: ServerDuration; compute?: ServerDuration }
  /** Streaming targets: time to first token and inter-token latency. */
  stream?: { timeToFirstToken: LatencySummary; interTokenLatency: LatencySummary; tokens: number }
  /**
   * gRPC targets: successful answers whose id, outputs (names, datatypes) and raw output sizes were
   * checked against the model (all of them; an answer that fails the check is an error).
   */
  checkedAnswers?: number
  /** Client CPU: process CPU time over wall time, in cores (1.0 = one core busy). */
  clientCpu: number
  timeline: TimelinePoint[]
}

export interface BenchResult {
  target: TargetKind
  url: string
  model?: string
  binary: boolean
  startedAt: string
  workers: number
  steps: StepResult[]
  /** Lines the user should read: a saturated generator, errors, … */
  warnings: string[]
  comparison?: Comparison
  tuning?: TuneResult
}

export interface StepComparison {
  label: string
  baselineThroughput: number
  throughput: number
  /** Relative change, negative is slower. */
  throughputChange: number
  baselineP99: number
  p99: number
  p99Change: number
  regressed: boolean
}

export interface Comparison {
  baselineFile: string
  maxRegression: number
  steps: StepComparison[]
  regressed: boolean
  /** Baseline steps with no step of the same label in this run. */
  missing: string[]
}

export interface TuneCandidate {
  maxBatchSize: number
  maxQueueDelayMs: number
  throughput: number
  p99: number
  errors: number
  withinTarget: boolean
}

export interface TuneResult {
  targetP99Ms: number
  concurrency: number
  /** How candidate configs reached the daemon: written to the model's config.yaml, then reloaded. */
  method: 'model-dir'
  modelDir: string
  candidates: TuneCandidate[]
  best?: TuneCandidate
}
