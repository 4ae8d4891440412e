import type { ModelConfig } from './model-config.js'
import { allocateData, elementCount, TYPED_ARRAY } from './tensor-data.js'
import type { Tensor, TensorData, TensorSpec } from './types.js'

const utf8 = new TextEncoder()

function fromValues(spec: TensorSpec, shape: number[], values: (number | string | boolean)[]): TensorData {
  const count = elementCount(shape)
  if (values.length !== count) {
    throw new Error(
      `warmup input '${spec.name}' has ${values.length} values for shape [${shape.join(',')}] (${count} needed)`,
    )
  }
  if (spec.datatype === 'BYTES') return values.map((v) => utf8.encode(String(v)))
  const data = new TYPED_ARRAY[spec.datatype as 'FP32'](count) as TensorData
  const big = spec.datatype === 'INT64' || spec.datatype === 'UINT64'
  values.forEach((v, i) => {
    const n = typeof v === 'boolean' ? Number(v) : Number(v)
    ;(data as unknown as (number | bigint)[])[i] = big ? BigInt(Math.trunc(n)) : n
  })
  return data
}

/**
 * The requests a new version runs before it takes traffic: those of config.warmup, or one request
 * of zeros with every dynamic dimension set to 1.
 */
export function warmupRequests(inputs: TensorSpec[], config: ModelConfig): Tensor[][] {
  if (config.warmup && config.warmup.length > 0) {
    return config.warmup.map((sample) => {
      const unknown = Object.keys(sample.inputs).find((n) => !inputs.some((s) => s.name === n))
      if (unknown) throw new Error(`warmup names input '${unknown}', which the model does not have`)
      return inputs.map((spec) => {
        const given = sample.inputs[spec.name]
        if (!given) throw new Error(`warmup is missing input '${spec.name}'`)
        const data = given.data
          ? fromValues(spec, given.shape, given.data)
          : allocateData(spec.datatype, elementCount(given.shape))
        return { name: spec.name, datatype: spec.datatype, shape: given.shape, data }
      })
    })
  }
  return [
    inputs.map((spec) => {
      const shape = spec.shape.map((d) => (d === -1 ? 1 : d))
      return {
        name: spec.name,
        datatype: spec.datatype,
        shape,
        data: allocateData(spec.datatype, elementCount(shape)),
      }
    }),
  ]
}
