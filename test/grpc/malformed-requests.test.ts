import { connect } from 'node:http2'
import {
  type ClientDuplexStream,
  type ClientReadableStream,
  credentials,
  Client as GrpcClient,
  Metadata,
  type ServiceDefinition,
  type ServiceError,
  status,
} from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadProtos } from '../../src/grpc/protos.js'
import { MAX_DETAILS_BYTES } from '../../src/grpc/status.js'
import { bytesOf, floatsOf, type TestGrpc, testGrpc } from './fixtures.js'

/**
 * What the gRPC fuzzer (test/security/grpc-fuzz.test.ts) found, each answered as the client's mistake
 * it is, with the connection left usable.
 */

let t: TestGrpc
let raw: GrpcClient
const pass = (b: Buffer) => b

beforeAll(async () => {
  t = await testGrpc()
  raw = new GrpcClient(t.server.target, credentials.createInsecure())
}, 60_000)
afterAll(async () => {
  raw?.close()
  await t?.close()
})

/** A unary call whose request is these bytes as they are. */
function unaryBytes(path: string, bytes: Buffer): Promise<{ code: status; details: string }> {
  return new Promise((resolve) => {
    raw.makeUnaryRequest(path, pass, pass, bytes, new Metadata(), { deadline: Date.now() + 5000 }, (err) =>
      resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: '' }),
    )
  })
}

interface StreamAnswer {
  error_message?: string
  infer_response?: { raw_output_contents: Buffer[] }
}

const ADD_REQUEST = {
  model_name: 'add',
  inputs: [
    { name: 'a', datatype: 'FP32', shape: [1, 4] },
    { name: 'b', datatype: 'FP32', shape: [1, 4] },
  ],
  raw_input_contents: [bytesOf(new Float32Array([1, 2, 3, 4])), bytesOf(new Float32Array([10, 20, 30, 40]))],
}

describe('requests that are not protobuf messages of their type', () => {
  it('a unary request that does not decode gets INVALID_ARGUMENT naming its type, not INTERNAL', async () => {
    // A tag of field 1 with wire type 7, which does not exist, and nothing after it.
    const answer = await unaryBytes('/inference.GRPCInferenceService/ModelInfer', Buffer.from('0f', 'hex'))
    expect(answer.code).toBe(status.INVALID_ARGUMENT)
    expect(answer.details).toMatch(
      /^The request is not a valid ModelInferRequest protobuf message \(index out of range/,
    )
    // Field 1's length is a varint cut short.
    const health = await unaryBytes('/grpc.health.v1.Health/Check', Buffer.from('0aff', 'hex'))
    expect(health.code).toBe(status.INVALID_ARGUMENT)
    expect(health.details).toMatch(/not a valid HealthCheckRequest protobuf message \(index out of range/)
  })

  it('a parameters map entry without its value (protobufjs cannot read it) is INVALID_ARGUMENT', async () => {
    // RepositoryModelUnloadRequest { model_name: "add", parameters: { "": <absent> } }
    const answer = await unaryBytes(
      '/inference.GRPCInferenceService/RepositoryModelUnload',
      Buffer.from('0a036164641a00', 'hex'),
    )
    expect(answer).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'The request is not a valid RepositoryModelUnloadRequest protobuf message.',
    })
    expect(t.service.modelReady('add')).toBe(true)
  })

  it('a server-streaming request that does not decode ends the stream with INVALID_ARGUMENT', async () => {
    const stream: ClientReadableStream<Buffer> = raw.makeServerStreamRequest(
      '/grpc.health.v1.Health/Watch',
      pass,
      pass,
      Buffer.from('08', 'hex'),
      new Metadata(),
    )
    stream.on('data', () => {})
    const err = await new Promise<ServiceError>((resolve) => stream.on('error', resolve))
    expect(err.code).toBe(status.INVALID_ARGUMENT)
    expect(err.details).toMatch(/not a valid HealthCheckRequest protobuf message/)
  })

  it('on ModelStreamInfer a message that does not decode gets error_message and the stream goes on', async () => {
    const method = (loadProtos().definition['inference.GRPCInferenceService'] as ServiceDefinition)
      .ModelStreamInfer
    const stream: ClientDuplexStream<Buffer, Buffer> = raw.makeBidiStreamRequest(
      method.path,
      pass,
      pass,
      new Metadata(),
    )
    const answers: StreamAnswer[] = []
    stream.on('data', (bytes: Buffer) => answers.push(method.responseDeserialize(bytes) as StreamAnswer))
    const ended = new Promise<void>((resolve) => stream.on('status', () => resolve()))
    const good = method.requestSerialize(ADD_REQUEST)
    stream.write(good)
    // inputs (field 5) claims 127 bytes and none follow.
    stream.write(Buffer.from('2a7f', 'hex'))
    stream.write(good)
    stream.end()
    await ended
    expect(answers).toHaveLength(3)
    expect(floatsOf(answers[0].infer_response!.raw_output_contents[0])).toEqual([11, 22, 33, 44])
    expect(answers[1].error_message).toMatch(/not a valid ModelInferRequest protobuf message/)
    expect(floatsOf(answers[2].infer_response!.raw_output_contents[0])).toEqual([11, 22, 33, 44])
  })
})

describe('server reflection', () => {
  it('a reflection request that does not decode gets an answer on the stream, which ends OK', async () => {
    const stream: ClientDuplexStream<Buffer, Buffer> = raw.makeBidiStreamRequest(
      '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      pass,
      pass,
      new Metadata(),
    )
    const answers: Buffer[] = []
    stream.on('data', (bytes: Buffer) => answers.push(bytes))
    const ended = new Promise<{ code: status }>((resolve) => {
      stream.on('error', resolve)
      stream.on('status', resolve)
    })
    stream.write(Buffer.from('0f', 'hex'))
    stream.end()
    expect((await ended).code).toBe(status.OK)
    // A ServerReflectionResponse with its error_response (field 7): UNIMPLEMENTED for no known request.
    expect(answers).toHaveLength(1)
    expect(answers[0].includes(Buffer.from('Unimplemented method for request'))).toBe(true)
  })
})

describe('status messages and headers a client cannot break the connection with', () => {
  it('a megabyte-long model name gets NOT_FOUND with a bounded message; the connection still serves', async () => {
    const name = 'A'.repeat(1_000_000)
    const err = await t.inference.failure('ModelInfer', { ...ADD_REQUEST, model_name: name })
    expect(err.code).toBe(status.NOT_FOUND)
    expect(Buffer.byteLength(err.details)).toBeLessThanOrEqual(MAX_DETAILS_BYTES)
    expect(err.details).toMatch(/^Model 'AAAA.*…$/)
    // The same client and connection go on.
    expect(await t.inference.call('ServerLive')).toEqual({ live: true })
    const utf8 = await t.inference.failure('ModelMetadata', { name: '😀'.repeat(100_000) })
    expect(utf8.code).toBe(status.NOT_FOUND)
    expect(Buffer.byteLength(utf8.details)).toBeLessThanOrEqual(MAX_DETAILS_BYTES)
    expect(utf8.details).not.toMatch(/\uFFFD/)
  })

  it('a malformed grpc-timeout header is served as no deadline, not answered INTERNAL', async () => {
    const session = connect(`http://${t.server.target}`)
    try {
      for (const timeout of ['1x', '', '123456789S']) {
        const stream = session.request({
          ':method': 'POST',
          ':path': '/inference.GRPCInferenceService/ServerLive',
          'content-type': 'application/grpc',
          te: 'trailers',
          'grpc-timeout': timeout,
        })
        const code = new Promise<string>((resolve) => {
          stream.on('response', (h) => h['grpc-status'] !== undefined && resolve(String(h['grpc-status'])))
          stream.on('trailers', (h) => resolve(String(h['grpc-status'])))
        })
        stream.on('data', () => {})
        stream.end(Buffer.alloc(5))
        expect(await code, timeout).toBe(String(status.OK))
      }
    } finally {
      session.close()
    }
  })
})
