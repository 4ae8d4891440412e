import { status } from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bytesOf, floatsOf, type TestGrpc, testGrpc } from './fixtures.js'

let t: TestGrpc
beforeAll(async () => {
  t = await testGrpc()
}, 60_000)
afterAll(async () => t?.close())

const a = [1, 2, 3, 4, 5, 6, 7, 8]
const b = [10, 20, 30, 40, 50, 60, 70, 80]
const sums = a.map((v, i) => v + b[i])

describe('inference.GRPCInferenceService: server and model metadata', () => {
  it('ServerLive, ServerReady and ServerMetadata describe the server', async () => {
    expect(await t.inference.call('ServerLive')).toEqual({ live: true })
    expect(await t.inference.call('ServerReady')).toEqual({ ready: true })
    expect(await t.inference.call('ServerMetadata')).toEqual({
      name: 'helix',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      extensions: ['model_repository', 'model_stream_infer'],
    })
  })

  it('ModelReady and ModelMetadata answer for a model and a version, NOT_FOUND for unknown ones', async () => {
    expect(await t.inference.call('ModelReady', { name: 'cls' })).toEqual({ ready: true })
    expect(await t.inference.call('ModelReady', { name: 'scale', version: '2' })).toEqual({ ready: true })
    expect(await t.inference.call('ModelReady', { name: 'broken' })).toEqual({ ready: false })
    expect(await t.inference.call('ModelMetadata', { name: 'cls' })).toEqual({
      name: 'cls',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'x', datatype: 'FP32', shape: ['-1', '3', '-1', '-1'] }],
      outputs: [{ name: 'softmax_0.tmp_0', datatype: 'FP32', shape: ['-1', '2'] }],
    })
    const unknown = await t.inference.failure('ModelMetadata', { name: 'nope' })
    expect(unknown.code).toBe(status.NOT_FOUND)
    expect(unknown.details).toMatch(/Model 'nope'/)
    expect(unknown.metadata.get('helix-error-code')).toEqual(['MODEL_NOT_FOUND'])
    const version = await t.inference.failure('ModelReady', { name: 'scale', version: '9' })
    expect(version.code).toBe(status.NOT_FOUND)
    expect(version.details).toMatch(/no version '9'/)
  })

  it('RepositoryIndex lists versions and states; ready filters', async () => {
    const all = await t.inference.call<{ models: { name: string; state: string }[] }>('RepositoryIndex', {})
    expect(all.models).toContainEqual(
      expect.objectContaining({ name: 'broken', version: '1', state: 'UNAVAILABLE' }),
    )
    const ready = await t.inference.call<{ models: { name: string }[] }>('RepositoryIndex', { ready: true })
    expect(ready.models.map((m) => m.name)).toContain('cls')
    expect(ready.models.map((m) => m.name)).not.toContain('broken')
  })
})

describe('inference.GRPCInferenceService: ModelInfer', () => {
  it('runs raw_input_contents and answers raw_output_contents, echoing the id and naming the version', async () => {
    const response = await t.inference.call<{
      model_name: string
      model_version: string
      id: string
      outputs: { name: string; datatype: string; shape: string[] }[]
      raw_output_contents: Buffer[]
    }>('ModelInfer', {
      model_name: 'add',
      id: 'req-7',
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [2, 4] },
        { name: 'b', datatype: 'FP32', shape: [2, 4] },
      ],
      raw_input_contents: [bytesOf(new Float32Array(a)), bytesOf(new Float32Array(b))],
    })
    expect(response).toMatchObject({ model_name: 'add', model_version: '1', id: 'req-7' })
    expect(response.outputs).toEqual([
      expect.objectContaining({ name: 'sum', datatype: 'FP32', shape: ['2', '4'] }),
    ])
    expect(floatsOf(response.raw_output_contents[0])).toEqual(sums)
  })

  it('runs typed contents and answers typed contents', async () => {
    const response = await t.inference.call<{
      outputs: { name: string; contents: { fp32_contents: number[] } }[]
      raw_output_contents: Buffer[]
    }>('ModelInfer', {
      model_name: 'add',
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [2, 4], contents: { fp32_contents: a } },
        { name: 'b', datatype: 'FP32', shape: [2, 4], contents: { fp32_contents: b } },
      ],
    })
    expect(response.outputs[0].contents.fp32_contents).toEqual(sums)
    expect(response.raw_output_contents).toEqual([])
  })

  it('binary_data on a requested output answers raw even for typed inputs', async () => {
    const response = await t.inference.call<{
      raw_output_contents: Buffer[]
      outputs: { contents?: unknown }[]
    }>('ModelInfer', {
      model_name: 'add',
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [2, 4], contents: { fp32_contents: a } },
        { name: 'b', datatype: 'FP32', shape: [2, 4], contents: { fp32_contents: b } },
      ],
      outputs: [{ name: 'sum', parameters: { binary_data: { bool_param: true } } }],
    })
    expect(floatsOf(response.raw_output_contents[0])).toEqual(sums)
    expect(response.outputs[0].contents).toBeUndefined()
  })

  it('selects a version and answers with it', async () => {
    const x = [1, 2, 3, 4]
    const v2 = await t.inference.call<{ model_version: string; raw_output_contents: Buffer[] }>(
      'ModelInfer',
      {
        model_name: 'scale',
        model_version: '2',
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }],
        raw_input_contents: [bytesOf(new Float32Array(x))],
      },
    )
    expect(v2.model_version).toBe('2')
    expect(floatsOf(v2.raw_output_contents[0])).toEqual(x.map((v) => v * 3))
  })

  it('refuses bad input with INVALID_ARGUMENT and the same message as REST', async () => {
    const cases: [unknown, RegExp][] = [
      [
        {
          model_name: 'add',
          inputs: [{ name: 'a', datatype: 'FP32', shape: [2, 4], contents: { fp32_contents: [1] } }],
        },
        /holds 8 elements but fp32_contents has 1/,
      ],
      [
        {
          model_name: 'add',
          inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 4], contents: { int_contents: [1, 2, 3, 4] } }],
        },
        /carries its elements in int_contents; FP32 goes in fp32_contents/,
      ],
      [
        {
          model_name: 'add',
          inputs: [
            { name: 'a', datatype: 'FP32', shape: [1, 4] },
            { name: 'b', datatype: 'FP32', shape: [1, 4] },
          ],
          raw_input_contents: [bytesOf(new Float32Array(4))],
        },
        /raw_input_contents has 1 entries for 2 inputs/,
      ],
      [
        {
          model_name: 'add',
          inputs: [
            { name: 'a', datatype: 'FP32', shape: [1, 4] },
            { name: 'b', datatype: 'FP32', shape: [1, 4] },
          ],
          raw_input_contents: [bytesOf(new Float32Array(3)), bytesOf(new Float32Array(4))],
        },
        /needs 16 bytes but its raw_input_contents entry has 12/,
      ],
      [
        { model_name: 'add', inputs: [{ name: 'a', datatype: 'FP99', shape: [1] }] },
        /unknown datatype 'FP99'/,
      ],
      [{ model_name: '', inputs: [] }, /model_name is required/],
      [
        {
          model_name: 'id_fp16',
          inputs: [{ name: 'x', datatype: 'FP16', shape: [1, 1], contents: { fp32_contents: [1] } }],
        },
        /FP16 has no typed contents field; send it in raw_input_contents/,
      ],
      [
        {
          model_name: 'add',
          inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [1, 2, 3, 4] } }],
        },
        /b/,
      ],
    ]
    for (const [request, message] of cases) {
      const err = await t.inference.failure('ModelInfer', request)
      expect(err.code, String(message)).toBe(status.INVALID_ARGUMENT)
      expect(err.details).toMatch(message)
    }
  })

  it('answers NOT_FOUND for unknown models and UNAVAILABLE for a model that failed to load', async () => {
    const unknown = await t.inference.failure('ModelInfer', { model_name: 'nope', inputs: [] })
    expect(unknown.code).toBe(status.NOT_FOUND)
    const broken = await t.inference.failure('ModelInfer', {
      model_name: 'broken',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1], contents: { fp32_contents: [1] } }],
    })
    expect(broken.code).toBe(status.UNAVAILABLE)
    expect(broken.details).toMatch(/not ready/)
  })
})
