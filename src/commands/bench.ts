import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { Flags } from '@oclif/core'
import { describeRegressions } from '../bench/baseline.js'
import { type BenchmarkOptions, benchmark } from '../bench/benchmark.js'
import {
  parseDuration,
  parseFraction,
  parseHeaders,
  parsePositiveIntList,
  parseRateList,
  parseShapes,
} from '../bench/flag-values.js'
import { progressWriter } from '../bench/report/progress-line.js'
import { renderSummary } from '../bench/report/summary-table.js'
import { daemonGrpcUrl, parseGrpcUrl } from '../bench/targets/grpc-address.js'
import { tlsOptions } from '../bench/targets/tls.js'
import { type BenchResult, isGrpcTarget, TARGET_KINDS, type TargetKind } from '../bench/types.js'
import { repositoryDir } from '../core/infer/repository-location.js'
import { HelixCommand } from '../shared/base-command.js'
import { Failure, UserError } from '../shared/errors.js'
import { CERT_FILES, certPath } from '../state/certs/cert-files.js'
import { locateDaemon } from '../state/daemon-record.js'

export default class Bench extends HelixCommand<BenchResult> {
  static summary =
    'Measure a running service: throughput, latency percentiles, errors, queue vs compute time.'
  static description =
    'Closed loop (--concurrency, a sweep of fixed client counts) or open loop (--rate, Poisson arrivals, latency from the intended send time). Targets a KServe v2 model (JSON or --binary; random inputs from the model metadata, or --input), the same over gRPC (--target grpc: ModelInfer with raw tensors; --target grpc-stream: one ModelStreamInfer stream per client, answers checked in order), OpenAI embeddings or streaming chat (time to first token, inter-token latency), or any URL (--target http). Writes a summary table, --json, --csv and a self-contained --report page; --save-baseline / --compare fail CI on regressions; --tune recommends max_batch_size and max_queue_delay_ms for a p99 target.'
  static examples = [
    '<%= config.bin %> bench --url http://127.0.0.1:8080 --model cls --concurrency 1,16,64 --duration 10s',
    '<%= config.bin %> bench --url http://127.0.0.1:8080 --model cls --binary --rate 200 --duration 30s --report bench.html',
    '<%= config.bin %> bench --url http://127.0.0.1:8080 --model cls --compare baseline.json --max-regression 10%',
    '<%= config.bin %> bench --url http://127.0.0.1:8080 --model cls --tune --target-p99 50ms --concurrency 32',
    '<%= config.bin %> bench --target http --url http://127.0.0.1:3000/echo --body \'{"x":1}\' --concurrency 100',
    '<%= config.bin %> bench --target grpc --url 127.0.0.1:8081 --model cls --shape x=1,3,48,192 --concurrency 32',
    '<%= config.bin %> bench --target grpc-stream --model cls --shape x=1,3,48,192 --concurrency 32 --key "$HELIX_API_KEY"',
  ]

  static flags = {
    url: Flags.string({
      description:
        'Base URL of the service (for --target http: the full URL; required there; gRPC targets: host:port, grpc://host:port, or grpcs://host:port for TLS). Default: the daemon running on the helix directory (data/daemon.json, its grpc.target for gRPC), else helix.yaml server.host/port (server.grpc.port).',
    }),
    model: Flags.string({ char: 'm', description: 'Model name (KServe) or model id (OpenAI targets).' }),
    'model-version': Flags.string({
      description: 'KServe: benchmark one version (/v2/models/M/versions/V).',
    }),
    key: Flags.string({
      description: 'API key, sent as Authorization: Bearer (gRPC: authorization metadata).',
      env: 'HELIX_API_KEY',
    }),
    cacert: Flags.string({
      description:
        'https/grpcs: PEM file of the CAs to trust instead of the default roots (default: those roots plus <dir>/certs/ca.crt when it exists).',
    }),
    'client-cert': Flags.string({
      description: 'https/grpcs with mTLS: client certificate (PEM), with --client-key.',
    }),
    'client-key': Flags.string({
      description: "https/grpcs with mTLS: the client certificate's private key (PEM).",
    }),
    target: Flags.string({ description: 'What API to load.', options: [...TARGET_KINDS], default: 'kserve' }),
    binary: Flags.boolean({
      description: 'KServe: send and receive tensors with the binary extension.',
      default: false,
    }),
    input: Flags.string({
      description:
        'KServe and gRPC: a JSON infer request body file (default: random data from the model metadata).',
    }),
    shape: Flags.string({
      description: 'KServe and gRPC: size of dynamic dimensions, e.g. x=1,3,48,192; repeatable.',
      multiple: true,
    }),
    body: Flags.string({ description: 'http: request body, or @file.' }),
    recorded: Flags.string({
      description: 'http: a recorded request file {"method","url"|"path","headers","body"}.',
    }),
    method: Flags.string({ description: 'http: HTTP method (default POST with a body, GET without).' }),
    header: Flags.string({
      char: 'H',
      description: 'Extra request header "Name: value" (gRPC: metadata); repeatable.',
      multiple: true,
    }),
    prompt: Flags.string({ description: 'OpenAI targets: the chat message or the text to embed.' }),
    'max-tokens': Flags.integer({
      description: 'openai-chat: max_tokens per completion.',
      default: 64,
      min: 1,
    }),
    concurrency: Flags.string({
      char: 'c',
      description: 'Closed loop: concurrent clients, a comma list sweeps.',
      default: '1,8,32',
    }),
    rate: Flags.string({
      char: 'r',
      description: 'Open loop: requests per second (Poisson arrivals), a comma list sweeps.',
    }),
    connections: Flags.integer({
      description: 'Open loop: connections the arrivals are dealt over, round-robin (grpc-stream: streams).',
      default: 64,
      min: 1,
    }),
    channels: Flags.integer({
      description: 'gRPC targets: HTTP/2 connections the calls and streams share, round-robin.',
      default: 1,
      min: 1,
    }),
    duration: Flags.string({
      char: 'd',
      description: 'Measured time per step (e.g. 10s).',
      exclusive: ['requests'],
    }),
    requests: Flags.integer({
      char: 'n',
      description: 'Measured requests per step instead of a duration.',
      min: 1,
    }),
    warmup: Flags.string({ description: 'Warm-up before each step, not measured.', default: '2s' }),
    timeout: Flags.string({ description: 'Per-request timeout.', default: '30s' }),
    workers: Flags.integer({
      description: 'Worker threads generating load (0 = the main thread).',
      default: 0,
      min: 0,
      max: 64,
    }),
    csv: Flags.string({ description: 'Write per-step results as CSV to this file.' }),
    report: Flags.string({ description: 'Write a self-contained HTML report with charts to this file.' }),
    'save-baseline': Flags.string({ description: 'Save this run as a baseline file for --compare.' }),
    compare: Flags.string({ description: 'Compare with a baseline file; exit 1 on a regression.' }),
    'max-regression': Flags.string({
      description: 'Allowed throughput drop / p99 rise for --compare.',
      default: '10%',
    }),
    tune: Flags.boolean({
      description: 'Sweep max_batch_size × max_queue_delay_ms through the load API and recommend one.',
      default: false,
    }),
    'target-p99': Flags.string({
      description: '--tune: the p99 latency a config must meet.',
      default: '50ms',
    }),
    'tune-batch': Flags.string({ description: '--tune: max_batch_size candidates.', default: '1,4,8,16,32' }),
    'tune-delay': Flags.string({ description: '--tune: max_queue_delay_ms candidates.', default: '0,1,2,5' }),
    'model-dir': Flags.string({
      description: '--tune: the served model directory (default <dir>/models/<model>).',
    }),
  }

  async run(): Promise<BenchResult> {
    const { flags } = await this.parse(Bench)
    const durationMs = flags.requests ? undefined : parseDuration(flags.duration ?? '10s', 'duration')
    const progress = progressWriter(process.stderr, durationMs)
    const grpc = isGrpcTarget(flags.target as TargetKind)
    const given = flags.url ?? (await this.daemonUrl(flags.target))
    // gRPC: host:port, grpc:// or grpcs://, normalised so the TLS flags see which it is.
    const url = grpc ? parseGrpcUrl(given).url : given
    const options: BenchmarkOptions = {
      target: {
        kind: flags.target as TargetKind,
        url,
        model: flags.model,
        modelVersion: flags['model-version'],
        key: flags.key,
        binary: flags.binary,
        inputFile: flags.input,
        shapes: parseShapes(flags.shape),
        body: flags.body,
        recorded: flags.recorded,
        method: flags.method,
        headers: parseHeaders(flags.header),
        prompt: flags.prompt,
        maxTokens: flags['max-tokens'],
        channels: flags.channels,
        tls: tlsOptions({
          url,
          cacert: flags.cacert,
          clientCert: flags['client-cert'],
          clientKey: flags['client-key'],
          helixCa: this.helixCa(),
        }),
      },
      concurrency: parsePositiveIntList(flags.concurrency, 'concurrency'),
      rates: flags.rate ? parseRateList(flags.rate, 'rate') : undefined,
      stop: flags.requests ? { requests: flags.requests } : { durationMs: durationMs! },
      warmupMs: parseDuration(flags.warmup, 'warmup'),
      connections: flags.connections,
      timeoutMs: parseDuration(flags.timeout, 'timeout'),
      workers: flags.workers,
      onProgress: this.jsonEnabled() ? undefined : (p) => progress.update(p),
      onStep: () => progress.done(),
      csvFile: flags.csv,
      reportFile: flags.report,
      saveBaselineFile: flags['save-baseline'],
      compare: flags.compare
        ? { file: flags.compare, maxRegression: parseFraction(flags['max-regression'], 'max-regression') }
        : undefined,
      tune: flags.tune ? await this.tuneOptions(flags) : undefined,
    }
    const result = await benchmark(options).finally(() => progress.done())
    this.log(renderSummary(result))
    if (result.comparison?.regressed) {
      if (this.jsonEnabled()) this.logJson(result)
      throw new Failure(
        'BENCH_REGRESSION',
        `Performance regressed beyond ${flags['max-regression']}: ${describeRegressions(result.comparison)}`,
        {
          hint: `Investigate the change, or refresh the baseline with --save-baseline ${result.comparison.baselineFile} if it is expected.`,
        },
      )
    }
    return result
  }

  /** Without --url: the helix daemon of --dir (its gRPC face for gRPC targets); an arbitrary HTTP target has no default. */
  private async daemonUrl(target: string): Promise<string> {
    if (target === 'http') {
      throw new UserError('BENCH_URL_REQUIRED', '--target http needs the URL to load.', {
        hint: 'Pass --url with the full URL, e.g. --url http://127.0.0.1:3000/echo.',
      })
    }
    if (isGrpcTarget(target as TargetKind)) return daemonGrpcUrl(this.home, await this.config_())
    return (await locateDaemon(this.home, await this.config_())).url
  }

  /** The helix directory's CA: the overlap bundle while a CA rotation is under way, else ca.crt. */
  private helixCa(): string {
    const bundle = certPath(this.home, CERT_FILES.caBundle)
    return existsSync(bundle) ? bundle : certPath(this.home, CERT_FILES.caCert)
  }

  private async tuneOptions(flags: {
    model?: string
    'model-dir'?: string
    'target-p99': string
    'tune-batch': string
    'tune-delay': string
  }) {
    const modelDir =
      flags['model-dir'] ??
      (flags.model ? join(repositoryDir(this.home, await this.config_()), flags.model) : undefined)
    if (!modelDir || !existsSync(modelDir)) {
      throw new UserError(
        'BENCH_MODEL_DIR_REQUIRED',
        `--tune writes candidate configs into the model's directory, and ${modelDir ?? 'none'} does not exist`,
        {
          hint: 'Pass --model-dir <helix dir>/models/<model> (or --dir) of the daemon being tuned.',
        },
      )
    }
    return {
      targetP99Ms: parseDuration(flags['target-p99'], 'target-p99'),
      batchSizes: parsePositiveIntList(flags['tune-batch'], 'tune-batch'),
      queueDelaysMs: flags['tune-delay'].split(',').map((d) => parseDuration(`${d.trim()}ms`, 'tune-delay')),
      modelDir,
    }
  }
}
