import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadSync, type MethodDefinition } from '@grpc/proto-loader'

/** The KServe v2 service the gRPC targets call, relative to proto/ at the package root. */
const INFERENCE_PROTO = join('inference', 'grpc_predict_v2.proto')
const SERVICE = 'inference.GRPCInferenceService'

/**
 * proto/ at the package root, found from both src/ (tests) and dist/ (the built CLI). helix bench
 * loads the .proto itself: it is a client of the daemon, not a part of its gRPC face.
 */
export function benchProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const candidate = join(dir, 'proto')
    if (existsSync(join(candidate, INFERENCE_PROTO))) return candidate
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`proto/${INFERENCE_PROTO} not found next to the helix package`)
    dir = parent
  }
}

// biome-ignore lint/suspicious/noExplicitAny: proto-loader types messages as plain objects
type Method = MethodDefinition<any, any>

/** The methods of inference.GRPCInferenceService helix bench calls, with their codecs. */
export interface InferenceMethods {
  ModelMetadata: Method
  ModelInfer: Method
  ModelStreamInfer: Method
}

let cached: InferenceMethods | undefined

/**
 * Loads (once per thread) the inference service. Messages decode with the field names of the .proto,
 * 64-bit integers as decimal strings, bytes as Buffers, repeated fields always arrays and scalar
 * fields at their defaults when absent, so an answer reads the same whatever the server left out.
 */
export function inferenceMethods(): InferenceMethods {
  if (!cached) {
    const definition = loadSync(INFERENCE_PROTO, {
      keepCase: true,
      longs: String,
      enums: String,
      bytes: Buffer,
      arrays: true,
      defaults: true,
      oneofs: true,
      includeDirs: [benchProtoDir()],
    })
    const service = definition[SERVICE] as unknown as Record<keyof InferenceMethods, Method>
    cached = {
      ModelMetadata: service.ModelMetadata,
      ModelInfer: service.ModelInfer,
      ModelStreamInfer: service.ModelStreamInfer,
    }
  }
  return cached
}
