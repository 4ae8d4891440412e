import { UserError } from '../../shared/errors.js'

/** A model input as GET /v2/models/{m} describes it; -1 marks a dynamic dimension. */
export interface InputSpec {
  name: string
  datatype: string
  shape: number[]
}

/** One input of a KServe v2 JSON infer request. */
export interface JsonInput {
  name: string
  shape: number[]
  datatype: string
  data?: unknown[]
  parameters?: Record<string, unknown>
}

export interface KserveRequest {
  id?: string
  parameters?: Record<string, unknown>
  inputs: JsonInput[]
  outputs?: { name: string; parameters?: Record<string, unknown> }[]
}

const FLOAT_TYPES = new Set(['FP16', 'BF16', 'FP32', 'FP64'])

/**
 * Resolves every dynamic dimension of an input: from --shape when given, else a leading batch
 * dimension becomes 1; any other unknown dimension needs --shape.
 */
export function concreteShape(spec: InputSpec, shapes: Record<string, number[]>): number[] {
  const given = shapes[spec.name]
  if (given) {
    const fits =
      given.length === spec.shape.length && given.every((d, i) => spec.shape[i] < 0 || spec.shape[i] === d)
    if (!fits) {
      throw new UserError(
        'BENCH_BAD_SHAPE',
        `--shape ${spec.name}=${given.join(',')} does not match the model's shape [${spec.shape.join(',')}]`,
        {
          hint: 'Keep the fixed dimensions and replace each -1 with a size.',
        },
      )
    }
    return given
  }
  const shape = spec.shape.map((d, i) => (d < 0 && i === 0 ? 1 : d))
  if (shape.some((d) => d < 0)) {
    throw new UserError(
      'BENCH_SHAPE_REQUIRED',
      `Input "${spec.name}" has dynamic dimensions [${spec.shape.join(',')}]; say which size to send`,
      {
        hint: `Pass --shape ${spec.name}=${shape.map((d) => (d < 0 ? 'N' : d)).join(',')} with each N a size.`,
      },
    )
  }
  return shape
}

/** Random data for one element type, small enough for any integer input (ids, lengths, masks). */
function randomElement(datatype: string): unknown {
  if (datatype === 'BOOL') return Math.random() < 0.5
  if (datatype === 'BYTES') return Math.random().toString(36).slice(2, 10)
  if (FLOAT_TYPES.has(datatype)) return Math.round(Math.random() * 1000) / 1000
  return Math.floor(Math.random() * 10)
}

/** An infer request with random data that matches the model's metadata. */
export function randomRequest(inputs: InputSpec[], shapes: Record<string, number[]>): KserveRequest {
  return {
    inputs: inputs.map((spec) => {
      const shape = concreteShape(spec, shapes)
      const count = shape.reduce((a, b) => a * b, 1)
      return {
        name: spec.name,
        shape,
        datatype: spec.datatype,
        data: Array.from({ length: count }, () => randomElement(spec.datatype)),
      }
    }),
  }
}
