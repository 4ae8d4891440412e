import {
  ChannelCredentials,
  type Client,
  type ClientDuplexStream,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js'
import { createModelService, type HelixModelService } from '../../src/core/infer/model-service.js'
import { HelixMetrics } from '../../src/core/metrics.js'
import { loadProtos } from '../../src/grpc/protos.js'
import {
  type GrpcServer,
  type GrpcServerDeps,
  type GrpcServerOptions,
  startGrpcServer,
} from '../../src/grpc/server.js'
import { modelRepository } from '../http/app/fixtures.js'

type Callback = (err: ServiceError | null, response: unknown) => void
type UnaryMethod = (
  request: unknown,
  metadata: Metadata,
  options: { deadline?: Date },
  callback: Callback,
) => void

/** A client of one service of the daemon's protos, with promise-returning unary calls. */
export class TestClient {
  constructor(
    readonly raw: Client & Record<string, unknown>,
    private readonly token?: string,
  ) {}

  metadata(extra: Record<string, string> = {}): Metadata {
    const metadata = new Metadata()
    if (this.token) metadata.set('authorization', `Bearer ${this.token}`)
    for (const [key, value] of Object.entries(extra)) metadata.set(key, value)
    return metadata
  }

  call<T = Record<string, unknown>>(
    method: string,
    request: unknown = {},
    options: { deadline?: Date; metadata?: Metadata } = {},
  ): Promise<T> {
    const fn = this.raw[method] as UnaryMethod
    return new Promise((resolve, reject) => {
      fn.call(
        this.raw,
        request,
        options.metadata ?? this.metadata(),
        options.deadline ? { deadline: options.deadline } : {},
        (err, response) => (err ? reject(err) : resolve(response as T)),
      )
    })
  }

  /** The status a call fails with (throws if it succeeds). */
  async failure(
    method: string,
    request: unknown = {},
    options: { deadline?: Date; metadata?: Metadata } = {},
  ) {
    try {
      await this.call(method, request, options)
    } catch (err) {
      return err as ServiceError
    }
    throw new Error(`${method} succeeded`)
  }

  stream<Req, Res>(method: string, metadata = this.metadata()): ClientDuplexStream<Req, Res> {
    return (this.raw[method] as (m: Metadata) => ClientDuplexStream<Req, Res>).call(this.raw, metadata)
  }

  close(): void {
    this.raw.close()
  }
}

/** A client of `service` (e.g. inference.GRPCInferenceService) at `target`. */
export function client(
  target: string,
  service: string,
  options: {
    token?: string
    credentials?: ChannelCredentials
    channelOptions?: Record<string, unknown>
  } = {},
): TestClient {
  let node: unknown = loadProtos().grpc
  for (const part of service.split('.')) node = (node as Record<string, unknown>)[part]
  const Ctor = node as new (
    target: string,
    credentials: ChannelCredentials,
    options?: Record<string, unknown>,
  ) => Client & Record<string, unknown>
  return new TestClient(
    new Ctor(target, options.credentials ?? grpcCredentials.createInsecure(), options.channelOptions ?? {}),
    options.token,
  )
}

export interface TestGrpc {
  server: GrpcServer
  service: HelixModelService
  metrics: HelixMetrics
  inference: TestClient
  health: TestClient
  repositoryDir: string
  close(): Promise<void>
}

/** The gRPC face over a real model service and repository of real .onnx files (auth off unless given). */
export async function testGrpc(
  options: Partial<GrpcServerOptions> = {},
  deps: Partial<GrpcServerDeps> = {},
): Promise<TestGrpc> {
  const repo = await modelRepository()
  const service = await createModelService({ repositoryDir: repo.dir, defaultDevice: 'cpu' })
  const metrics = new HelixMetrics(service, { defaultMetrics: false })
  const server = await startGrpcServer(
    { host: '127.0.0.1', port: 0, maxMessageBytes: 64 * 1024 * 1024, ...options },
    { service, metrics, logger: { debug() {}, info() {}, warn() {}, error() {} }, ...deps },
  )
  const inference = client(server.target, 'inference.GRPCInferenceService')
  const health = client(server.target, 'grpc.health.v1.Health')
  return {
    server,
    service,
    metrics,
    inference,
    health,
    repositoryDir: repo.dir,
    async close() {
      inference.close()
      health.close()
      await server.shutdown(1000)
      await service.close()
      await repo.cleanup()
    },
  }
}

/** Raw little-endian bytes of a typed array. */
export function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength)
}

/** Float32 elements of raw output bytes. */
export function floatsOf(raw: Buffer): number[] {
  return Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)))
}

export { ChannelCredentials }
