import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { answerProblem, idField } from '../../../src/bench/grpc-answer.js'
import { frameMessage, MessageReader } from '../../../src/bench/grpc-lane.js'
import { grpcErrorKind } from '../../../src/bench/grpc-load-client.js'
import { runStep } from '../../../src/bench/run-step.js'
import { grpcPlan } from '../../../src/bench/targets/grpc.js'
import { daemonGrpcUrl, parseGrpcUrl } from '../../../src/bench/targets/grpc-address.js'
import { lastTransportError, preflightError } from '../../../src/bench/targets/grpc-preflight.js'
import { inferenceMethods } from '../../../src/bench/targets/grpc-protos.js'
import { parseConfig } from '../../../src/shared/config.js'
import { UserError } from '../../../src/shared/errors.js'
import { HelixHome } from '../../../src/shared/home.js'
import { writeDaemonRecord } from '../../../src/state/daemon-record.js'
import { tempDir } from '../../helpers/cli.js'
import { type FakeGrpcServer, options, startFakeGrpc, grpcStep as step } from '../grpc-servers.js'

describe('gRPC targets against a server that misbehaves', () => {
  const servers: FakeGrpcServer[] = []
  const start = async (o: Parameters<typeof startFakeGrpc>[0]) => {
    const s = await startFakeGrpc(o)
    servers.push(s)
    return s
  }
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()))
  })

  it('sends the API key as authorization: Bearer metadata, with -H headers, and refuses a wrong key', async () => {
    const server = await start({ key: 'hx_right' })
    const { plan } = await grpcPlan(
      options({ url: server.target, key: 'hx_right', headers: { 'x-request-source': 'bench' } }),
    )
    expect(server.lastMetadata()).toMatchObject({
      authorization: 'Bearer hx_right',
      'x-request-source': 'bench',
      'user-agent': expect.stringMatching(/^helix-bench /),
    })
    expect(plan.metadata).toEqual({ authorization: 'Bearer hx_right', 'x-request-source': 'bench' })
    const result = await runStep(plan, step())
    expect(result).toMatchObject({ successes: 20, errorCount: 0, checkedAnswers: 20 })
    const wrong = await grpcPlan(options({ url: server.target, key: 'hx_wrong' })).catch((e) => e)
    expect(wrong).toMatchObject({ code: 'BENCH_UNAUTHORIZED', exitCode: 2 })
    expect(wrong.message).toMatch(/refused the credentials \(UNAUTHENTICATED: Invalid credentials\.\)/)
    expect(wrong.hint).toMatch(/--key/)
    const none = await grpcPlan(options({ url: server.target, kind: 'grpc-stream' })).catch((e) => e)
    expect(none).toMatchObject({ code: 'BENCH_UNAUTHORIZED' })
  })

  it('counts answers of the wrong size as errors, not successes', async () => {
    const server = await start({ misbehave: 'wrong-size' })
    const { plan } = await grpcPlan(options({ url: server.target }))
    expect(plan.check).toEqual({ outputs: [{ name: 'y', datatype: 'FP32', bytes: 16 }] })
    const result = await runStep(plan, step())
    expect(result).toMatchObject({ successes: 0, errorCount: 20, errors: { 'wrong output size': 20 } })
    expect(result.checkedAnswers).toBe(0)
  })

  it('grpc-stream: an answer whose id is not the next request of its stream is out of order', async () => {
    const server = await start({ misbehave: 'wrong-id' })
    // The preflight's unary call and stream message are the first two answers: the unary one is right.
    const refused = await grpcPlan(options({ kind: 'grpc-stream', url: server.target })).catch((e) => e)
    expect(refused).toMatchObject({ code: 'BENCH_BAD_ANSWER', exitCode: 1 })
    expect(refused.message).toMatch(/answered ModelStreamInfer unlike ModelInfer \(answer out of order\)/)
    const fresh = await start({ misbehave: 'wrong-id' })
    const { plan } = await grpcPlan(options({ url: fresh.target }))
    const result = await runStep({ ...plan, method: 'stream' }, step())
    expect(result).toMatchObject({ successes: 0, errors: { 'answer out of order': 20 } })
  })

  it('grpc-stream: a message answered with error_message is an error, and the stream goes on', async () => {
    const server = await start({ misbehave: 'stream-error' })
    const { plan } = await grpcPlan(options({ kind: 'grpc-stream', url: server.target }))
    const result = await runStep(
      plan,
      step({ load: { mode: 'closed', concurrency: 1 }, stop: { requests: 20 } }),
    )
    expect(result.requests).toBe(20)
    expect(result.errors).toEqual({ 'stream error: queue is full': 10 })
    expect(result).toMatchObject({ successes: 10, checkedAnswers: 10 })
  })

  it('times out calls and streams that get no answer, and fails the calls of a server that went away', async () => {
    const server = await start({ misbehave: 'hang' })
    const { plan } = await grpcPlan(options({ url: server.target }))
    const quick = step({ stop: { requests: 4 }, timeoutMs: 150 })
    const unary = await runStep(plan, quick)
    expect(unary).toMatchObject({ requests: 4, successes: 0, errors: { timeout: 4 } })
    expect(unary.latency.count).toBe(0)
    const streamed = await runStep({ ...plan, method: 'stream' }, quick)
    expect(streamed).toMatchObject({ requests: 4, successes: 0, errors: { timeout: 4 } })
    const gone = await start({})
    const built = await grpcPlan(options({ url: gone.target }))
    await gone.close()
    for (const method of ['unary', 'stream'] as const) {
      const failed = await runStep({ ...built.plan, method }, step({ stop: { requests: 6 } }))
      expect(failed.requests, method).toBe(6)
      expect(failed.successes).toBe(0)
      expect(Object.keys(failed.errors), method).toEqual(['ECONNREFUSED'])
    }
  })

  it('refuses to load a server whose first answer does not match the model, saying what is wrong', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ id: 'other' }, /with id "other" instead of the request's "probe"/],
      [{ outputs: [], raw_output_contents: [] }, /with no outputs/],
      [
        { raw_output_contents: [Buffer.alloc(16), Buffer.alloc(16)] },
        /2 raw_output_contents entries for 1 outputs/,
      ],
      [
        { outputs: [{ name: 'z', datatype: 'FP32', shape: ['1', '4'] }] },
        /output "z", which the model does not list/,
      ],
      [
        { outputs: [{ name: 'y', datatype: 'FP64', shape: ['1', '4'] }] },
        /output "y" as FP64; the model says FP32/,
      ],
      [{ raw_output_contents: [Buffer.alloc(12)] }, /12 bytes for output "y" of shape \[1,4\]/],
    ]
    for (const [answerWith, message] of cases) {
      const server = await start({ answerWith })
      const refused = await grpcPlan(options({ url: server.target })).catch((e) => e)
      expect(refused, String(message)).toMatchObject({ code: 'BENCH_BAD_ANSWER', exitCode: 1 })
      expect(refused.message).toMatch(message)
    }
    // Typed contents instead of raw bytes: names and datatypes are still checked, sizes cannot be.
    const typed = await start({ answerWith: { raw_output_contents: [] } })
    const { plan } = await grpcPlan(options({ url: typed.target }))
    expect(plan.check).toEqual({ outputs: [{ name: 'y', datatype: 'FP32' }] })
  })

  it('grpc-stream: a stream message answered with an error fails the preflight with the server message', async () => {
    const server = await start({ streamRefusal: 'Model queue is full.' })
    const refused = await grpcPlan(options({ kind: 'grpc-stream', url: server.target })).catch((e) => e)
    expect(refused).toMatchObject({ code: 'BENCH_BAD_REQUEST', exitCode: 2 })
    expect(refused.message).toMatch(
      /answered the ModelStreamInfer request with an error: Model queue is full\./,
    )
  })

  it('a server without the inference methods is not a KServe gRPC server', async () => {
    const server = await start({ noInfer: true })
    const refused = await grpcPlan(options({ url: server.target })).catch((e) => e)
    expect(refused).toMatchObject({ code: 'BENCH_NOT_GRPC', exitCode: 2 })
    expect(refused.message).toMatch(/does not serve inference\.GRPCInferenceService \(UNIMPLEMENTED/)
  })

  it('an unknown model is named, with where it was looked for', async () => {
    const server = await start({})
    await expect(grpcPlan(options({ url: server.target, model: 'x' }))).rejects.toThrow(
      `Model "x" is not served at grpc://${server.target}`,
    )
  })
})

describe('the gRPC address of the daemon on a helix directory', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> }
  beforeAll(async () => {
    tmp = await tempDir('helix-bench-grpc-home-')
  })
  afterAll(async () => {
    await tmp.cleanup()
  })
  const record = {
    pid: process.pid,
    url: 'http://127.0.0.1:18080',
    host: '127.0.0.1',
    port: 18080,
    tls: false,
    mtls: false,
    started_at: new Date().toISOString(),
    version: '0.0.0',
  }

  it("is data/daemon.json's grpc.target while a daemon runs, else helix.yaml's server.grpc", async () => {
    const home = new HelixHome(tmp.dir)
    expect(await daemonGrpcUrl(home, parseConfig({}))).toBe('grpc://127.0.0.1:8081')
    expect(await daemonGrpcUrl(home, parseConfig({ server: { port: 9000, tls: true, host: '::' } }))).toBe(
      'grpcs://127.0.0.1:9001',
    )
    expect(await daemonGrpcUrl(home, parseConfig({ server: { host: '::1', grpc: { port: 7000 } } }))).toBe(
      'grpc://[::1]:7000',
    )
    await expect(daemonGrpcUrl(home, parseConfig({ server: { grpc: { enabled: false } } }))).rejects.toThrow(
      /helix\.yaml names no gRPC port/,
    )
    await expect(daemonGrpcUrl(home, parseConfig({ server: { port: 0 } }))).rejects.toMatchObject({
      code: 'BENCH_URL_REQUIRED',
    })
    await writeDaemonRecord(home, { ...record, grpc: { target: '127.0.0.1:18081', port: 18081, tls: true } })
    expect(await daemonGrpcUrl(home, parseConfig({}))).toBe('grpcs://127.0.0.1:18081')
    await writeDaemonRecord(home, record)
    await expect(daemonGrpcUrl(home, parseConfig({}))).rejects.toThrow(
      `The daemon running on ${home.root} (pid ${process.pid}) serves no gRPC`,
    )
  })
})

describe('gRPC target pieces', () => {
  let encoded: Buffer
  beforeAll(() => {
    encoded = inferenceMethods().ModelInfer.requestSerialize({ model_name: 'm', id: 'first' })
  })

  it('parses gRPC addresses: host:port, grpc://, grpcs://, http(s):// and IPv6', () => {
    expect(parseGrpcUrl('127.0.0.1:8081')).toEqual({
      target: '127.0.0.1:8081',
      tls: false,
      url: 'grpc://127.0.0.1:8081',
    })
    expect(parseGrpcUrl('grpcs://api.example.com:9443')).toMatchObject({
      target: 'api.example.com:9443',
      tls: true,
    })
    expect(parseGrpcUrl('https://api.example.com')).toMatchObject({
      target: 'api.example.com:443',
      tls: true,
    })
    expect(parseGrpcUrl('http://h:81/')).toMatchObject({ target: 'h:81', tls: false })
    expect(parseGrpcUrl('[::1]:8081')).toMatchObject({ target: '[::1]:8081', url: 'grpc://[::1]:8081' })
    for (const bad of ['localhost', 'ftp://h:1', 'grpc://h:1/v2', 'h:1?x=1', 'grpc://:1', 'http://[bad']) {
      expect(() => parseGrpcUrl(bad), bad).toThrow(UserError)
    }
    expect(() => parseGrpcUrl('localhost')).toThrow(/--url localhost has no port/)
  })

  it('appends an id that protobuf reads instead of an earlier one, whatever its length', () => {
    const decode = (b: Buffer) => inferenceMethods().ModelInfer.requestDeserialize(b)
    expect(decode(Buffer.concat([encoded, idField('7.a')]))).toMatchObject({ model_name: 'm', id: '7.a' })
    const long = 'x'.repeat(300)
    expect(decode(Buffer.concat([encoded, idField(long)])).id).toBe(long)
  })

  it('frames messages and reads them back across DATA frames', () => {
    const framed = frameMessage(Buffer.from('abc'), Buffer.from('de'))
    expect([...framed]).toEqual([0, 0, 0, 0, 5, ...Buffer.from('abcde')])
    const messages: string[] = []
    const reader = new MessageReader()
    const two = Buffer.concat([framed, frameMessage(Buffer.from('xyz'))])
    // One byte at a time, then two messages in one chunk.
    for (const byte of two) reader.push(Buffer.from([byte]), (m) => messages.push(m.toString()))
    reader.push(two, (m) => messages.push(m.toString()))
    expect(messages).toEqual(['abcde', 'xyz', 'abcde', 'xyz'])
  })

  it('checks ids, output names, datatypes and sizes', () => {
    const check = { outputs: [{ name: 'y', datatype: 'FP32', bytes: 8 }] }
    const answer = {
      model_name: 'm',
      model_version: '1',
      id: 'a',
      outputs: [{ name: 'y', datatype: 'FP32', shape: ['1', '2'] }],
      raw_output_contents: [Buffer.alloc(8)],
    }
    expect(answerProblem(answer, check, 'a')).toBeUndefined()
    expect(answerProblem(answer, check)).toBeUndefined()
    expect(answerProblem(answer, check, 'b')).toBe('answer out of order')
    expect(answerProblem({ ...answer, outputs: [] }, check)).toBe('wrong outputs')
    expect(answerProblem({ ...answer, outputs: [{ ...answer.outputs[0], datatype: 'FP16' }] }, check)).toBe(
      'wrong outputs',
    )
    expect(answerProblem({ ...answer, raw_output_contents: [] }, check)).toBe('wrong output size')
    expect(
      answerProblem({ ...answer, raw_output_contents: [] }, { outputs: [{ name: 'y', datatype: 'FP32' }] }),
    ).toBe(undefined)
  })

  it('names transport failures by their cause, and maps statuses to error kinds', () => {
    expect(
      lastTransportError(
        'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ',
      ),
    ).toBe('connect ECONNREFUSED 127.0.0.1:1')
    expect(
      lastTransportError(
        'No connection established. Last error: Protocol error (2026-12-04T08:57:30.010Z). Resolution note: ',
      ),
    ).toBe('Protocol error')
    expect(
      lastTransportError(
        'No connection established. Last error: Error: 80:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../x.c:350:\n. Resolution note: ',
      ),
    ).toBe('wrong version number')
    expect(grpcErrorKind({ code: 4 })).toBe('timeout')
    expect(grpcErrorKind({ code: 8 })).toBe('grpc RESOURCE_EXHAUSTED')
    const where = { url: 'grpcs://h:1', tls: true, clientCert: false }
    const notFound = () => new UserError('MODEL_NOT_FOUND', 'x')
    const untrusted = preflightError(
      {
        code: 14,
        details: 'No connection established. Last error: Error: self-signed certificate in certificate chain',
      },
      where,
      notFound,
    )
    expect(untrusted.code).toBe('BENCH_UNREACHABLE')
    expect(untrusted.hint).toContain('--cacert')
    const mtls = preflightError(
      {
        code: 14,
        details:
          'No connection established. Last error: Error: 80:error:0A00045C:SSL routines::tlsv13 alert certificate required:../x.c:1:',
      },
      where,
      notFound,
    )
    expect(mtls.message).toMatch(/tlsv13 alert certificate required/)
    expect(mtls.hint).toContain('--client-cert')
    expect(preflightError({ code: 4 }, where, notFound).message).toMatch(/did not answer within 15 s/)
    expect(preflightError({ code: 13, details: 'boom' }, where, notFound)).toMatchObject({
      code: 'BENCH_SERVER_ERROR',
      exitCode: 1,
    })
    expect(preflightError({ code: 5 }, where, notFound).code).toBe('MODEL_NOT_FOUND')
  })
})
