import { status } from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Datatype } from '../../src/core/infer/types.js'
import { GRPC_STATUS, toServiceError } from '../../src/grpc/status.js'
import { ERROR_KINDS } from '../../src/shared/error-codes.js'
import { Failure, UserError } from '../../src/shared/errors.js'
import { IDENTITY_DATATYPES } from '../helpers/onnx-models.js'
import { type TestGrpc, testGrpc } from './fixtures.js'

let t: TestGrpc
beforeAll(async () => {
  t = await testGrpc()
}, 60_000)
afterAll(async () => t?.close())

/** Two rows of three elements of each datatype, in its typed-contents field and as raw bytes. */
const SAMPLES: Record<string, { field: string; values: unknown[]; raw: (values: unknown[]) => Buffer }> = {
  BOOL: {
    field: 'bool_contents',
    values: [true, false, true, false, false, true],
    raw: (v) => Buffer.from(v.map((b) => (b ? 1 : 0))),
  },
  UINT8: {
    field: 'uint_contents',
    values: [0, 1, 127, 128, 254, 255],
    raw: (v) => Buffer.from(Uint8Array.from(v as number[])),
  },
  INT8: {
    field: 'int_contents',
    values: [-128, -1, 0, 1, 100, 127],
    raw: (v) => Buffer.from(Int8Array.from(v as number[]).buffer),
  },
  UINT16: {
    field: 'uint_contents',
    values: [0, 1, 300, 65535, 4, 5],
    raw: (v) => Buffer.from(Uint16Array.from(v as number[]).buffer),
  },
  INT16: {
    field: 'int_contents',
    values: [-32768, -1, 0, 1, 300, 32767],
    raw: (v) => Buffer.from(Int16Array.from(v as number[]).buffer),
  },
  INT32: {
    field: 'int_contents',
    values: [-2147483648, -1, 0, 1, 65536, 2147483647],
    raw: (v) => Buffer.from(Int32Array.from(v as number[]).buffer),
  },
  UINT32: {
    field: 'uint_contents',
    values: [0, 1, 65536, 4294967295, 7, 8],
    raw: (v) => Buffer.from(Uint32Array.from(v as number[]).buffer),
  },
  INT64: {
    field: 'int64_contents',
    values: ['-9223372036854775808', '-1', '0', '1', '9007199254740993', '9223372036854775807'],
    raw: (v) => Buffer.from(BigInt64Array.from(v as string[], BigInt).buffer),
  },
  UINT64: {
    field: 'uint64_contents',
    values: ['0', '1', '9007199254740993', '18446744073709551615', '5', '6'],
    raw: (v) => Buffer.from(BigUint64Array.from(v as string[], BigInt).buffer),
  },
  FP32: {
    field: 'fp32_contents',
    values: [-1.5, 0, 0.25, 3, 0.125, 65504],
    raw: (v) => Buffer.from(Float32Array.from(v as number[]).buffer),
  },
  FP64: {
    field: 'fp64_contents',
    values: [-1.5, 0, 0.1, 3, 1e-300, 1e300],
    raw: (v) => Buffer.from(Float64Array.from(v as number[]).buffer),
  },
  BYTES: {
    field: 'bytes_contents',
    values: ['a', '', 'héllo', 'x'.repeat(40), '✓ ok', 'z'].map((s) => Buffer.from(s)),
    raw: (v) =>
      Buffer.concat(
        (v as Buffer[]).flatMap((b) => {
          const length = Buffer.alloc(4)
          length.writeUInt32LE(b.length)
          return [length, b]
        }),
      ),
  },
}

function request(datatype: Datatype, mode: 'raw' | 'typed') {
  const sample = SAMPLES[datatype]
  const input = { name: 'input', datatype, shape: [2, 3] }
  return mode === 'typed'
    ? {
        model_name: `id_${datatype.toLowerCase()}`,
        inputs: [{ ...input, contents: { [sample.field]: sample.values } }],
      }
    : {
        model_name: `id_${datatype.toLowerCase()}`,
        inputs: [input],
        raw_input_contents: [sample.raw(sample.values)],
      }
}

interface Answer {
  outputs: { datatype: string; shape: string[]; contents?: Record<string, unknown[]> }[]
  raw_output_contents: Buffer[]
}

describe('every datatype round-trips through ModelInfer (identity models on onnxruntime)', () => {
  for (const datatype of IDENTITY_DATATYPES.filter((d) => d !== 'FP16')) {
    it(`${datatype}: typed contents in and out, raw bytes in and out`, async () => {
      const sample = SAMPLES[datatype]
      const typed = await t.inference.call<Answer>('ModelInfer', request(datatype, 'typed'))
      expect(typed.outputs[0]).toMatchObject({ datatype, shape: ['2', '3'] })
      const plain = (values: unknown[] | undefined) =>
        values?.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v))
      expect(plain(typed.outputs[0].contents?.[sample.field])).toEqual(plain(sample.values))
      const raw = await t.inference.call<Answer>('ModelInfer', request(datatype, 'raw'))
      expect(raw.outputs[0].contents).toBeUndefined()
      expect(raw.raw_output_contents[0].equals(sample.raw(sample.values))).toBe(true)
    })
  }

  it('FP16 travels raw only, and its answer is raw even for a request that asks for nothing', async () => {
    const bits = Buffer.from(Uint16Array.from([0x3c00, 0xc000, 0, 0x7bff, 0x0001, 0x3555]).buffer)
    const answer = await t.inference.call<Answer>('ModelInfer', {
      model_name: 'id_fp16',
      inputs: [{ name: 'input', datatype: 'FP16', shape: [2, 3] }],
      raw_input_contents: [bits],
    })
    expect(answer.raw_output_contents[0].equals(bits)).toBe(true)
  })

  it('refuses integers outside a narrow type and a scalar of the wrong count', async () => {
    const tooBig = await t.inference.failure('ModelInfer', {
      model_name: 'id_int8',
      inputs: [{ name: 'input', datatype: 'INT8', shape: [1, 3], contents: { int_contents: [1, 200, 3] } }],
    })
    expect(tooBig.code).toBe(status.INVALID_ARGUMENT)
    expect(tooBig.details).toMatch(/element 1 is 200, expected an integer from -128 to 127/)
    const badBytes = await t.inference.failure('ModelInfer', {
      model_name: 'id_bytes',
      inputs: [{ name: 'input', datatype: 'BYTES', shape: [1, 3] }],
      raw_input_contents: [Buffer.from([5, 0, 0, 0, 97])],
    })
    expect(badBytes.code).toBe(status.INVALID_ARGUMENT)
    expect(badBytes.details).toMatch(/claims 5 bytes but fewer remain/)
  })
})

describe('the kind → gRPC status table', () => {
  it('maps every error kind, and each kind the way the protocol reads it', () => {
    const kinds = new Set(Object.values(ERROR_KINDS))
    for (const kind of kinds) expect(GRPC_STATUS[kind], kind).toBeTypeOf('number')
    expect(GRPC_STATUS).toMatchObject({
      not_found: status.NOT_FOUND,
      invalid_input: status.INVALID_ARGUMENT,
      overloaded: status.RESOURCE_EXHAUSTED,
      rate_limited: status.RESOURCE_EXHAUSTED,
      unavailable: status.UNAVAILABLE,
      unauthenticated: status.UNAUTHENTICATED,
      forbidden: status.PERMISSION_DENIED,
      timeout: status.DEADLINE_EXCEEDED,
      cancelled: status.CANCELLED,
    })
  })

  it('hides internal messages and anything that is not a HelixError', () => {
    expect(toServiceError(new Failure('INTERNAL', 'db password is hunter2'))).toMatchObject({
      code: status.INTERNAL,
      details: 'Internal server error.',
    })
    expect(toServiceError(new TypeError('x is undefined'))).toMatchObject({
      code: status.INTERNAL,
      details: 'Internal server error.',
    })
    const refused = toServiceError(
      new UserError('RATE_LIMITED', 'Slow down.', { details: { retryAfterSeconds: 2.2 } }),
    )
    expect(refused.metadata?.get('retry-after')).toEqual(['3'])
    expect(refused.metadata?.get('grpc-retry-pushback-ms')).toEqual(['3000'])
  })
})
