import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type GrpcObject, loadPackageDefinition } from '@grpc/grpc-js'
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader'

/** The .proto files the daemon serves, relative to proto/ at the package root. */
export const PROTO_FILES = [
  'inference/grpc_predict_v2.proto',
  'grpc/health/v1/health.proto',
  'helix/auth/v1/auth.proto',
  'helix/monitoring/v1/monitoring.proto',
] as const

/** proto/ at the package root, found from both src/ (tests) and dist/ (the built CLI). */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const candidate = join(dir, 'proto')
    if (existsSync(join(candidate, PROTO_FILES[0]))) return candidate
    const parent = dirname(dir)
    if (parent === dir) throw new Error('proto/ directory not found next to the helix package')
    dir = parent
  }
}

/**
 * How messages reach the handlers: field names as in the .proto files, 64-bit integers as decimal
 * strings (exact beyond 2^53), bytes as Buffers (views over the received message, no copy), repeated
 * fields always arrays, and which member of a oneof is set.
 */
export const LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  arrays: true,
  oneofs: true,
}

export interface LoadedProtos {
  definition: PackageDefinition
  grpc: GrpcObject
}

let cached: LoadedProtos | undefined

/** Loads (once) the service definitions the daemon serves. */
export function loadProtos(): LoadedProtos {
  if (!cached) {
    const definition = loadSync([...PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [protoDir()] })
    cached = { definition, grpc: loadPackageDefinition(definition) }
  }
  return cached
}
