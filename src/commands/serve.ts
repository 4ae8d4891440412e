import { Flags } from '@oclif/core'
import { logFormatFlag } from '../cli/daemon-flags.js'
import { LOG_LEVELS } from '../http/serve-config.js'
import type { ServeResult } from '../http/server.js'
import { serveDaemon } from '../ops/serve.js'
import { HelixCommand } from '../shared/base-command.js'
import type { LogFormat } from '../shared/config-schema.js'

export default class Serve extends HelixCommand<ServeResult> {
  static summary = 'Run the inference daemon in the foreground (KServe v2 REST and gRPC APIs, and /metrics).'
  static description =
    'Loads the models of the repository (models/<name>/<version>/model.onnx) and serves them. gRPC (KServe inference.GRPCInferenceService, grpc.health.v1, reflection) listens on the REST port + 1 unless server.grpc says otherwise, with the same TLS, credentials and limits. Settings come from helix.yaml < env (HELIX_HOST, HELIX_PORT, HELIX_GRPC_PORT, HELIX_LOG_LEVEL, HELIX_LOG_FORMAT, HELIX_DRAIN_TIMEOUT_MS) < flags. Logs go to stdout: short human lines on a terminal, JSON lines otherwise (--log-format); one line per failed request, every request or a sample with logging.requests in helix.yaml. While it listens, data/daemon.json records its pid and address for `helix status`, `doctor`, `models` and `bench`. SIGTERM or SIGINT stops accepting connections, lets in-flight requests finish (bounded), unloads the models and exits 0.'
  static examples = [
    '<%= config.bin %> serve',
    '<%= config.bin %> serve --host 0.0.0.0 --port 8443 --tls',
    '<%= config.bin %> serve --mtls --dir /srv/helix',
    '<%= config.bin %> serve --grpc-port 9001',
    '<%= config.bin %> serve --no-grpc',
  ]

  static flags = {
    host: Flags.string({ description: 'Address to listen on (default 127.0.0.1, server.host).' }),
    port: Flags.integer({
      description: 'Port to listen on; 0 picks a free one (default 8080, server.port).',
      min: 0,
      max: 65535,
    }),
    tls: Flags.boolean({
      description: 'Serve HTTPS with certs/server.crt and certs/server.key.',
      allowNo: true,
    }),
    mtls: Flags.boolean({
      description: 'Require client certificates signed by certs/ca.crt (implies --tls).',
      allowNo: true,
    }),
    auth: Flags.boolean({
      description:
        'Authenticate callers (API keys, JWTs) against the database; --no-auth only for local experiments.',
      allowNo: true,
    }),
    grpc: Flags.boolean({
      description:
        'Serve gRPC (KServe GRPCInferenceService, health, reflection) next to REST (server.grpc.enabled).',
      allowNo: true,
    }),
    'grpc-port': Flags.integer({
      description:
        'Port of the gRPC face; 0 picks a free one (default: the REST port + 1, i.e. 8081; server.grpc.port, HELIX_GRPC_PORT).',
      min: 0,
      max: 65535,
    }),
    'metrics-port': Flags.integer({
      description:
        'Also serve GET /metrics on 127.0.0.1 at this port without credentials, for a local Prometheus (server.metrics_port); 0 picks a free one.',
      min: 0,
      max: 65535,
    }),
    'log-level': Flags.string({ description: 'Log level (default info).', options: [...LOG_LEVELS] }),
    'log-format': logFormatFlag,
  }

  async run(): Promise<ServeResult> {
    const { flags } = await this.parse(Serve)
    // A daemon whose stdout or stderr fails (a full disk, a closed pipe) keeps serving; its log
    // output says so once (src/http/log-output.ts). @oclif/core's own listener rethrows every stdout
    // error but EPIPE, which would make a full disk an uncaught exception: it is replaced.
    for (const stream of [process.stdout, process.stderr]) {
      stream.removeAllListeners('error')
      stream.on('error', () => undefined)
    }
    const result = await serveDaemon(
      this.home,
      {
        host: flags.host,
        port: flags.port,
        tls: flags.tls,
        mtls: flags.mtls,
        logLevel: flags['log-level'],
        logFormat: flags['log-format'] as LogFormat | undefined,
        auth: flags.auth,
        grpc: flags.grpc,
        grpcPort: flags['grpc-port'],
        metricsPort: flags['metrics-port'],
      },
      {
        onListening: (url, faces) => {
          this.announce(`helix serve listening on ${url}`)
          for (const face of faces) this.announce(`helix serve ${face.name} listening on ${face.address}`)
        },
        // Under --json stdout holds only the final result; the logs go to stderr.
        logDestination: this.jsonEnabled() ? 2 : 1,
      },
    )
    this.announce(`helix serve stopped (${result.signal})`)
    return result
  }

  /** A status line on stdout, which may fail (a full disk) without stopping the daemon. */
  private announce(text: string): void {
    try {
      this.log(text)
    } catch {
      // The log output has said why on stderr.
    }
  }
}
