import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js'
import { describe, expect, it } from 'vitest'
import {
  decodeInferRequest,
  fieldHeaderBefore,
  type GrpcInferRequest,
} from '../../src/grpc/inference/tensors.js'
import { loadProtos } from '../../src/grpc/protos.js'

const modelInfer = (
  loadProtos().grpc.inference as unknown as { GRPCInferenceService: { service: ServiceDefinition } }
).GRPCInferenceService.service.ModelInfer as MethodDefinition<object, unknown>

/** A ModelInferRequest as the daemon receives it: serialized, then decoded from one message buffer. */
function received(id: string, a: Float32Array, b: BigInt64Array, c: Float32Array): GrpcInferRequest {
  const wire = modelInfer.requestSerialize({
    model_name: 'm',
    id,
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [a.length] },
      { name: 'b', datatype: 'INT64', shape: [b.length] },
      { name: 'c', datatype: 'FP32', shape: [c.length] },
    ],
    raw_input_contents: [a, b, c].map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength)),
  })
  // A fresh buffer of its own, as grpc-js hands a reassembled message to the deserializer.
  const message = Buffer.from(new Uint8Array(wire).slice().buffer)
  return modelInfer.requestDeserialize(message) as GrpcInferRequest
}

describe('raw_input_contents alignment', () => {
  const a = Float32Array.from({ length: 300 }, (_, i) => i / 7)
  const b = BigInt64Array.from({ length: 5 }, (_, i) => BigInt(i) * 10_000_000_000n - 3n)
  const c = Float32Array.from([1.5, -2.25, 3])

  it.each([0, 1, 2, 3, 4, 5, 6, 7])(
    'decodes every input exactly at any offset in the message (id of %i characters)',
    (length) => {
      const message = received('x'.repeat(length), a, b, c)
      const memory = message.raw_input_contents[0]?.buffer
      // Data moves down over its own field header (tag and length) when that is room enough to align it.
      const inPlace = message.raw_input_contents.map(
        (entry, i) => entry.byteOffset % (i === 1 ? 8 : 4) <= fieldHeaderBefore(entry),
      )
      const { request } = decodeInferRequest(message)
      const [da, db, dc] = request.inputs.map((t) => t.data)
      expect([...(da as Float32Array)]).toEqual([...a])
      expect([...(db as BigInt64Array)]).toEqual([...b])
      expect([...(dc as Float32Array)]).toEqual([...c])
      request.inputs.forEach((input, i) => {
        expect((input.data as Float32Array).buffer === memory).toBe(inPlace[i])
      })
      // A's three header bytes cover any FP32 misalignment.
      expect(inPlace[0]).toBe(true)
    },
  )

  it('finds the field header before an entry, and nothing before bytes that are not one', () => {
    const message = received('', a, b, c)
    // 1200 bytes take a two-byte length varint; 40 and 12 bytes take one.
    expect(message.raw_input_contents.map(fieldHeaderBefore)).toEqual([3, 2, 2])
    expect(fieldHeaderBefore(Buffer.from(a.buffer))).toBe(0)
    const lookalike = Buffer.alloc(20)
    lookalike[3] = 0x3a
    lookalike[4] = 15
    expect(fieldHeaderBefore(lookalike.subarray(5))).toBe(2)
    lookalike[4] = 14 // a length that is not the entry's
    expect(fieldHeaderBefore(lookalike.subarray(5))).toBe(0)
  })

  it('copies unaligned data it was not told it may overwrite', () => {
    const message = received('x', a, b, c)
    const entry = message.raw_input_contents[2] as Buffer
    const standalone = Buffer.alloc(entry.length + 1)
    entry.copy(standalone, 1)
    const { request } = decodeInferRequest({
      ...message,
      raw_input_contents: [
        message.raw_input_contents[0] as Buffer,
        message.raw_input_contents[1] as Buffer,
        standalone.subarray(1),
      ],
    })
    const data = request.inputs[2]?.data as Float32Array
    expect(data.buffer).not.toBe(standalone.buffer)
    expect([...data]).toEqual([...c])
    expect([...standalone.subarray(1)]).toEqual([...entry]) // left as it was
  })
})
