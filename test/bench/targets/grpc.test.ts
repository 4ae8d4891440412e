import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runStep } from '../../../src/bench/run-step.js'
import { grpcPlan } from '../../../src/bench/targets/grpc.js'
import { inferenceMethods } from '../../../src/bench/targets/grpc-protos.js'
import type { TargetOptions } from '../../../src/bench/targets/target-options.js'
import type { StepPlan } from '../../../src/bench/types.js'
import { type TestGrpc, testGrpc } from '../../grpc/fixtures.js'
import { tempDir } from '../../helpers/cli.js'
import { grpcStep } from '../grpc-servers.js'
import { startServer, type TestServer } from '../servers.js'

const options = (over: Partial<TargetOptions>): TargetOptions => ({
  kind: 'grpc',
  url: '',
  binary: false,
  shapes: {},
  headers: {},
  maxTokens: 16,
  ...over,
})

const step = (over: Partial<StepPlan>): StepPlan =>
  grpcStep({
    load: { mode: 'closed', concurrency: 4 },
    stop: { requests: 40 },
    connections: 4,
    timeoutMs: 10_000,
    ...over,
  })

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: { code: string; exitCode: number }) => `${e.code}/${e.exitCode}`,
  )

/** Calls the gRPC face answered with OK, by method name. */
async function okCalls(t: TestGrpc, method: string): Promise<number> {
  const { values } = await t.metrics.grpcRequests.get()
  return values
    .filter((v) => v.labels.method === `/inference.GRPCInferenceService/${method}` && v.labels.code === 'OK')
    .reduce((sum, v) => sum + v.value, 0)
}

/** Inferences the core ran for a model over gRPC (a stream counts each message). */
async function grpcInferences(t: TestGrpc, model: string): Promise<number> {
  const { values } = await t.metrics.inferenceRequests.get()
  return values
    .filter((v) => v.labels.model === model && v.labels.protocol === 'grpc' && v.labels.status === 'success')
    .reduce((sum, v) => sum + v.value, 0)
}

describe('helix bench gRPC targets against the gRPC face over real ONNX models', () => {
  let t: TestGrpc
  let url: string
  let tmp: { dir: string; cleanup: () => Promise<void> }
  beforeAll(async () => {
    t = await testGrpc()
    url = t.server.target
    tmp = await tempDir('helix-bench-grpc-')
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    await tmp?.cleanup()
  })

  it('reads the model over ModelMetadata, sends raw_input_contents and checks the probe answer', async () => {
    const before = await okCalls(t, 'ModelInfer')
    const {
      plan,
      metadata,
      url: shown,
    } = await grpcPlan(options({ url, model: 'cls', shapes: { x: [1, 3, 48, 192] } }))
    expect(shown).toBe(`grpc://${url}`)
    expect(metadata.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1, -1] }])
    expect(plan).toMatchObject({ protocol: 'grpc', target: url, method: 'unary', channels: 1 })
    expect(plan.tls).toBeUndefined()
    const request = inferenceMethods().ModelInfer.requestDeserialize(Buffer.from(plan.request))
    expect(request).toMatchObject({
      model_name: 'cls',
      inputs: [{ name: 'x', datatype: 'FP32', shape: ['1', '3', '48', '192'] }],
    })
    expect(request.raw_input_contents[0].length).toBe(3 * 48 * 192 * 4)
    // The probe's answer fixes what every answer must carry: one FP32 [1, 2] output.
    expect(plan.check).toEqual({ outputs: [{ name: 'softmax_0.tmp_0', datatype: 'FP32', bytes: 8 }] })
    expect(await okCalls(t, 'ModelInfer')).toBe(before + 1)
  })

  it('grpc: a closed loop keeps `concurrency` ModelInfer calls in flight and checks every answer', async () => {
    const { plan } = await grpcPlan(options({ url, model: 'add' }))
    const before = await okCalls(t, 'ModelInfer')
    const result = await runStep(plan, step({}))
    expect(result).toMatchObject({
      label: 'c=4',
      requests: 40,
      successes: 40,
      errorCount: 0,
      checkedAnswers: 40,
    })
    expect(result.latency.count).toBe(40)
    expect(result.latency.p50).toBeGreaterThan(0)
    expect(await okCalls(t, 'ModelInfer')).toBe(before + 40)
  })

  it('grpc: several inputs and outputs of different types (INT64, a scalar) over two channels', async () => {
    const { plan } = await grpcPlan(options({ url, model: 'multi', channels: 2 }))
    expect(plan.channels).toBe(2)
    expect(plan.check.outputs.map((o) => [o.name, o.datatype, o.bytes])).toEqual([
      ['scaled', 'FP32', 12],
      ['next_ids', 'INT64', 16],
    ])
    const result = await runStep(
      plan,
      step({ load: { mode: 'closed', concurrency: 3 }, stop: { requests: 30 } }),
    )
    expect(result).toMatchObject({ successes: 30, errorCount: 0, checkedAnswers: 30 })
  })

  it('grpc-stream: one ModelStreamInfer stream per client, every answer taken in order and checked', async () => {
    const { plan } = await grpcPlan(options({ kind: 'grpc-stream', url, model: 'add' }))
    expect(plan.method).toBe('stream')
    const streamsBefore = await okCalls(t, 'ModelStreamInfer')
    const inferBefore = await grpcInferences(t, 'add')
    const result = await runStep(
      plan,
      step({ load: { mode: 'closed', concurrency: 3 }, stop: { requests: 60 } }),
    )
    expect(result).toMatchObject({ requests: 60, successes: 60, errorCount: 0, checkedAnswers: 60 })
    // Three streams, each ended cleanly when the step closed them.
    expect(await okCalls(t, 'ModelStreamInfer')).toBe(streamsBefore + 3)
    expect(await grpcInferences(t, 'add')).toBe(inferBefore + 60)
  })

  it('grpc-stream: an open loop deals arrivals over --connections streams, many in flight on each', async () => {
    const { plan } = await grpcPlan(options({ kind: 'grpc-stream', url, model: 'add' }))
    const streamsBefore = await okCalls(t, 'ModelStreamInfer')
    const result = await runStep(
      plan,
      step({ load: { mode: 'open', rate: 2000 }, stop: { requests: 200 }, connections: 2 }),
    )
    expect(result).toMatchObject({ label: 'rate=2000', successes: 200, errorCount: 0, checkedAnswers: 200 })
    expect(result.correctedForCoordinatedOmission).toBe(true)
    expect(await okCalls(t, 'ModelStreamInfer')).toBe(streamsBefore + 2)
  })

  it('splits the calls over worker threads (each with its own channel) and merges what they checked', async () => {
    const { plan } = await grpcPlan(options({ url, model: 'add' }))
    const result = await runStep(plan, step({ workers: 2, stop: { requests: 50 }, warmupMs: 200 }))
    expect(result).toMatchObject({ successes: 50, errorCount: 0, checkedAnswers: 50 })
    const stream = await grpcPlan(options({ kind: 'grpc-stream', url, model: 'add' }))
    const streamed = await runStep(stream.plan, step({ workers: 2, stop: { requests: 50 } }))
    expect(streamed).toMatchObject({ successes: 50, errorCount: 0, checkedAnswers: 50 })
  })

  it('sends --input files as raw tensors and a model version', async () => {
    const file = join(tmp.dir, 'scale.json')
    await writeFile(
      file,
      JSON.stringify({
        inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] }],
      }),
    )
    const { plan } = await grpcPlan(options({ url, model: 'scale', modelVersion: '2', inputFile: file }))
    const request = inferenceMethods().ModelInfer.requestDeserialize(Buffer.from(plan.request))
    expect(request).toMatchObject({ model_name: 'scale', model_version: '2' })
    expect(Array.from(new Float32Array(new Uint8Array(request.raw_input_contents[0]).buffer))).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8,
    ])
    expect(plan.check.outputs).toEqual([{ name: 'y', datatype: 'FP32', bytes: 32 }])
    const result = await runStep(plan, step({ stop: { requests: 8 } }))
    expect(result).toMatchObject({ successes: 8, errorCount: 0, checkedAnswers: 8 })
  })

  it('refuses clearly: unknown model or version, no --model, dynamic shapes, bad inputs, bad URLs', async () => {
    expect(await codeOf(grpcPlan(options({ url, model: 'nope' })))).toBe('MODEL_NOT_FOUND/2')
    await expect(grpcPlan(options({ url, model: 'scale', modelVersion: '9' }))).rejects.toThrow(
      /Model "scale" version 9 is not served at grpc:\/\//,
    )
    expect(await codeOf(grpcPlan(options({ url })))).toBe('BENCH_MODEL_REQUIRED/2')
    await expect(grpcPlan(options({ url, model: 'cls' }))).rejects.toThrow(
      /Input "x" has dynamic dimensions \[-1,3,-1,-1\]/,
    )
    const wrong = join(tmp.dir, 'wrong.json')
    await writeFile(
      wrong,
      JSON.stringify({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2] }] }),
    )
    const rejected = grpcPlan(options({ url, model: 'scale', inputFile: wrong }))
    await expect(rejected).rejects.toMatchObject({ code: 'BENCH_BAD_REQUEST', exitCode: 2 })
    await expect(grpcPlan(options({ url, model: 'scale', inputFile: wrong }))).rejects.toThrow(
      /rejected the benchmark request \(INVALID_ARGUMENT: /,
    )
    await writeFile(wrong, JSON.stringify({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32' }] }))
    expect(await codeOf(grpcPlan(options({ url, model: 'scale', inputFile: wrong })))).toBe(
      'BENCH_INPUT_INVALID/2',
    )
    await writeFile(wrong, JSON.stringify({ inputs: [] }))
    expect(await codeOf(grpcPlan(options({ url, model: 'scale', inputFile: wrong })))).toBe(
      'BENCH_INPUT_INVALID/2',
    )
    expect(await codeOf(grpcPlan(options({ url: `${url}/v2`, model: 'add' })))).toBe('BENCH_BAD_URL/2')
    expect(await codeOf(grpcPlan(options({ url: 'ftp://127.0.0.1:1', model: 'add' })))).toBe(
      'BENCH_BAD_URL/2',
    )
  })

  it('tells a closed port, a REST port and a TLS mismatch apart, each with what to do', async () => {
    const closed = grpcPlan(options({ url: '127.0.0.1:1', model: 'add' }))
    await expect(closed).rejects.toMatchObject({ code: 'BENCH_UNREACHABLE', exitCode: 1 })
    await expect(grpcPlan(options({ url: '127.0.0.1:1', model: 'add' }))).rejects.toThrow(
      /Cannot reach grpc:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/,
    )
    const rest: TestServer = await startServer()
    try {
      const port = new URL(rest.url).port
      const refused = await grpcPlan(options({ url: `127.0.0.1:${port}`, model: 'add' })).catch((e) => e)
      expect(refused).toMatchObject({ code: 'BENCH_NOT_GRPC', exitCode: 2 })
      expect(refused.message).toMatch(/did not answer as a gRPC server/)
      expect(refused.hint).toMatch(/the gRPC port, not the REST one/)
      const tls = await grpcPlan(options({ url: `grpcs://127.0.0.1:${port}`, model: 'add' })).catch((e) => e)
      expect(tls).toMatchObject({ code: 'BENCH_NOT_GRPC' })
      expect(tls.message).toMatch(/wrong version number/)
      expect(tls.hint).toMatch(/does not speak TLS there: use grpc:\/\//)
    } finally {
      await rest.close()
    }
  })
})
