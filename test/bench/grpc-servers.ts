import {
  type Metadata,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js'
import type { TargetOptions } from '../../src/bench/targets/target-options.js'
import type { StepPlan } from '../../src/bench/types.js'
import { loadProtos } from '../../src/grpc/protos.js'

/** gRPC target options for the model "m" of these servers. */
export const options = (over: Partial<TargetOptions>): TargetOptions => ({
  kind: 'grpc',
  url: '',
  model: 'm',
  binary: false,
  shapes: {},
  headers: {},
  maxTokens: 16,
  ...over,
})

/** A short closed-loop step: 20 calls, 2 in flight. */
export const grpcStep = (over: Partial<StepPlan> = {}): StepPlan => ({
  load: { mode: 'closed', concurrency: 2 },
  stop: { requests: 20 },
  warmupMs: 0,
  connections: 2,
  timeoutMs: 5000,
  workers: 0,
  ...over,
})

/**
 * A KServe v2 gRPC server on loopback for driving `helix bench`'s gRPC targets through what the
 * daemon never does: wrong answers after a good first one, a required key, a missing method. Model
 * "m": input x FP32 [-1, 4], output y FP32 [-1, 4] (the input, echoed).
 */
export interface FakeGrpcServer {
  target: string
  /** ModelInfer calls and stream messages answered. */
  answered: () => number
  /** Metadata of the last call, lower-case keys. */
  lastMetadata: () => Record<string, string>
  close: () => Promise<void>
}

export interface FakeGrpcOptions {
  /** Required bearer token; other calls get UNAUTHENTICATED. */
  key?: string
  /**
   * After the first answer: outputs of the wrong size, ids that do not match, per-message stream
   * errors, or no answer at all.
   */
  misbehave?: 'wrong-size' | 'wrong-id' | 'stream-error' | 'hang'
  /** Leave ModelInfer and ModelStreamInfer out (UNIMPLEMENTED). */
  noInfer?: boolean
  /** Changes to every ModelInfer answer (the probe's too), e.g. an output the model does not list. */
  answerWith?: Record<string, unknown>
  /** Answer every stream message with this error_message. */
  streamRefusal?: string
  /** Channel options of the grpc-js Server (grpc.max_connection_age_ms, grpc.max_concurrent_streams). */
  serverOptions?: Record<string, unknown>
}

interface Request {
  model_name: string
  id: string
  inputs: { name: string; datatype: string; shape: string[] }[]
  raw_input_contents: Buffer[]
}

export async function startFakeGrpc(options: FakeGrpcOptions = {}): Promise<FakeGrpcServer> {
  let node: unknown = loadProtos().grpc
  for (const part of ['inference', 'GRPCInferenceService']) node = (node as Record<string, unknown>)[part]
  const definition = (node as { service: ServiceDefinition }).service
  let answered = 0
  let metadata: Record<string, string> = {}
  const refused = (m: Metadata): boolean => {
    metadata = Object.fromEntries(Object.entries(m.getMap()).map(([k, v]) => [k, String(v)]))
    return options.key !== undefined && m.get('authorization')[0] !== `Bearer ${options.key}`
  }
  const answer = (request: Request) => {
    const first = answered++ === 0
    const raw = request.raw_input_contents[0] ?? Buffer.alloc(0)
    return {
      model_name: 'm',
      model_version: '1',
      id: !first && options.misbehave === 'wrong-id' ? `${request.id}x` : request.id,
      outputs: [{ name: 'y', datatype: 'FP32', shape: request.inputs[0]?.shape ?? [] }],
      raw_output_contents: [!first && options.misbehave === 'wrong-size' ? raw.subarray(0, 4) : raw],
      ...options.answerWith,
    }
  }
  const implementation: Record<string, unknown> = {
    ModelMetadata(call: ServerUnaryCall<{ name: string }, unknown>, callback: sendUnaryData<unknown>) {
      if (refused(call.metadata))
        return callback({ code: status.UNAUTHENTICATED, details: 'Invalid credentials.' })
      if (call.request.name !== 'm') return callback({ code: status.NOT_FOUND, details: 'no such model' })
      callback(null, {
        name: 'm',
        versions: ['1'],
        platform: 'fake',
        inputs: [{ name: 'x', datatype: 'FP32', shape: ['-1', '4'] }],
        outputs: [{ name: 'y', datatype: 'FP32', shape: ['-1', '4'] }],
      })
    },
  }
  if (!options.noInfer) {
    implementation.ModelInfer = (
      call: ServerUnaryCall<Request, unknown>,
      callback: sendUnaryData<unknown>,
    ) => {
      if (refused(call.metadata))
        return callback({ code: status.UNAUTHENTICATED, details: 'Invalid credentials.' })
      if (options.misbehave === 'hang' && answered > 0) return
      callback(null, answer(call.request))
    }
    implementation.ModelStreamInfer = (call: ServerDuplexStream<Request, unknown>) => {
      if (refused(call.metadata)) {
        call.destroy(Object.assign(new Error('Invalid credentials.'), { code: status.UNAUTHENTICATED }))
        return
      }
      let messages = 0
      call.on('data', (request: Request) => {
        if (options.streamRefusal) return call.write({ error_message: options.streamRefusal })
        if (options.misbehave === 'hang' && answered > 0) return
        if (options.misbehave === 'stream-error' && messages++ > 0 && messages % 2 === 0) {
          answered++
          call.write({ error_message: 'queue is full', infer_response: { id: request.id } })
          return
        }
        call.write({ infer_response: answer(request) })
      })
      call.on('end', () => call.end())
    }
  }
  const server = new Server(options.serverOptions)
  server.addService(definition, implementation as never)
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  )
  return {
    target: `127.0.0.1:${port}`,
    answered: () => answered,
    lastMetadata: () => metadata,
    close: async () => server.forceShutdown(),
  }
}
