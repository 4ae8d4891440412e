import { readFile } from 'node:fs/promises'
import { connect } from 'node:http2'
import { gzipSync } from 'node:zlib'
import {
  type ClientDuplexStream,
  type ClientReadableStream,
  credentials,
  Client as GrpcClient,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAccount } from '../../src/core/identity/accounts.js'
import { CLI_ACTOR, createKey } from '../../src/core/identity/api-keys.js'
import { elementSize, isDatatype } from '../../src/core/infer/datatypes.js'
import { HelixMetrics } from '../../src/core/metrics.js'
import { CONTENTS_FIELD } from '../../src/grpc/inference/tensors.js'
import { loadProtos, PROTO_FILES } from '../../src/grpc/protos.js'
import { type GrpcServer, startGrpcServer } from '../../src/grpc/server.js'
import { type Daemon, daemon, type IdentityWorld, identityWorld } from '../core/identity/identity-harness.js'
import { addToRepository, CLS_MODEL_PATH } from '../helpers/onnx-models.js'

/**
 * Every method of every service in the shipped .proto files fuzzed from its message descriptors:
 * messages written field by field from the descriptor (scalars, repeated and packed fields, nested
 * messages, oneofs, maps, enums) with values that fit and edge values (empty and huge strings, invalid
 * UTF-8, NaN and infinities, negative and 2^63 integers, over-long varints, wrong wire types), KServe
 * inference requests for the served models with shapes, datatypes and raw_input_contents that lie,
 * byte-level mutations of all of these, and raw HTTP/2 gRPC frames whose length prefix lies, whose
 * message is truncated or random, or whose compressed flag is set without (or with broken)
 * compression. Unary calls, ModelStreamInfer with several messages, WatchStats and Health.Watch
 * cancelled early; with an admin API key, an infer key, a JWT, a forged key or no credentials.
 *
 * Whatever comes in, every call ends with a status (a deadline catches hangs; only the streaming
 * methods that run until cancelled may reach it), never UNKNOWN or INTERNAL (gRPC's 5xx), nor an
 * in-stream "Internal server error."; the daemon still answers ServerLive afterwards and its live heap
 * stays bounded. HELIX_GRPC_FUZZ_CASES sets the number of cases, HELIX_GRPC_FUZZ_SEED the seed; a
 * failure prints the seed with every case that broke.
 */

const CASES = Number(process.env.HELIX_GRPC_FUZZ_CASES ?? 1_500)
const SEED = Number(process.env.HELIX_GRPC_FUZZ_SEED ?? Date.now() % 2 ** 31)
/** Calls in flight at once: concurrency is part of what a daemon meets (1 replays cases one by one). */
const LANES = Number(process.env.HELIX_GRPC_FUZZ_LANES ?? 4)
/**
 * A unary call (or a half-closed ModelStreamInfer) that has no status by then hangs. GetUsage first
 * waits for the usage recorder's flush, which took up to 11 s on 2 cores while other suites ran beside
 * this one (load average 7); on an idle machine it stays under 1.5 s.
 */
const CALL_DEADLINE_MS = 30_000
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024

/** The live heap after a full garbage collection (what a leak would grow; RSS also keeps freed pages). */
async function liveHeap(): Promise<number> {
  const v8 = await import('node:v8')
  const vm = await import('node:vm')
  v8.setFlagsFromString('--expose_gc')
  ;(vm.runInNewContext('gc') as () => void)()
  return process.memoryUsage().heapUsed
}

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]
  const chance = (p: number) => next() < p
  return { next, int, pick, chance }
}
type Random = ReturnType<typeof prng>

// ---------------------------------------------------------------------------------------------------
// Descriptors, as @grpc/proto-loader gives them (google.protobuf.DescriptorProto in object form)

interface FieldDescriptor {
  name: string
  number: number
  label: 'LABEL_OPTIONAL' | 'LABEL_REPEATED' | 'LABEL_REQUIRED'
  type: string
  typeName: string
  oneofIndex: number
}
interface MessageDescriptor {
  name: string
  field: FieldDescriptor[]
  nestedType: MessageDescriptor[]
  enumType: EnumDescriptor[]
  oneofDecl: { name: string }[]
  options?: { mapEntry?: boolean } | null
}
interface EnumDescriptor {
  name: string
  value: { name: string; number: number }[]
}

/** Every message and enum of the loaded files by full name (nested ones as Outer.Inner). */
class Descriptors {
  readonly messages = new Map<string, MessageDescriptor>()
  readonly enums = new Map<string, EnumDescriptor>()

  constructor(definition: Record<string, unknown>) {
    for (const [name, entry] of Object.entries(definition)) {
      const typed = entry as { format?: string; type?: unknown }
      if (typed.format?.endsWith('DescriptorProto') && !typed.format.includes('Enum'))
        this.addMessage(name, typed.type as MessageDescriptor)
      else if (typed.format?.endsWith('EnumDescriptorProto'))
        this.enums.set(name, typed.type as EnumDescriptor)
    }
  }

  private addMessage(fullName: string, message: MessageDescriptor) {
    this.messages.set(fullName, message)
    for (const nested of message.nestedType ?? []) this.addMessage(`${fullName}.${nested.name}`, nested)
    for (const e of message.enumType ?? []) this.enums.set(`${fullName}.${e.name}`, e)
  }

  /** A type name as protobuf resolves it: from the innermost scope outwards. */
  resolve(scope: string, typeName: string): string {
    if (typeName.startsWith('.')) return typeName.slice(1)
    const parts = scope.split('.')
    for (let i = parts.length; i >= 0; i--) {
      const candidate = [...parts.slice(0, i), typeName].join('.')
      if (this.messages.has(candidate) || this.enums.has(candidate)) return candidate
    }
    throw new Error(`cannot resolve ${typeName} from ${scope}`)
  }

  /**
   * The oneof a field belongs to, or -1. proto-loader's descriptors give every field oneofIndex 0 when
   * it is in no oneof, so membership of index 0 is read from the oneof's name: a proto3 `optional`
   * field's synthetic oneof is `_<field>`, and a real oneof owns the fields no synthetic one claims.
   */
  oneofOf(message: MessageDescriptor, field: FieldDescriptor): number {
    const decls = message.oneofDecl ?? []
    const synthetic = decls.findIndex((d) => d.name === `_${field.name}`)
    if (synthetic >= 0) return synthetic
    const decl = decls[field.oneofIndex]
    if (!decl || decl.name.startsWith('_')) return -1
    return field.oneofIndex
  }
}

// ---------------------------------------------------------------------------------------------------
// The protobuf wire format, written by hand so that values no serializer would write can be sent

class Writer {
  private readonly parts: Buffer[] = []
  varint(value: bigint): this {
    let v = value < 0n ? BigInt.asUintN(64, value) : value
    const bytes: number[] = []
    do {
      let byte = Number(v & 0x7fn)
      v >>= 7n
      if (v > 0n) byte |= 0x80
      bytes.push(byte)
    } while (v > 0n)
    this.parts.push(Buffer.from(bytes))
    return this
  }
  tag(field: number, wireType: number): this {
    return this.varint(BigInt(field) * 8n + BigInt(wireType))
  }
  raw(bytes: Uint8Array): this {
    this.parts.push(Buffer.from(bytes))
    return this
  }
  delimited(bytes: Uint8Array, lie = 0): this {
    return this.varint(BigInt(Math.max(0, bytes.length + lie))).raw(bytes)
  }
  finish(): Buffer {
    return Buffer.concat(this.parts)
  }
}

const WIRE_TYPE: Record<string, number> = {
  TYPE_DOUBLE: 1,
  TYPE_FIXED64: 1,
  TYPE_SFIXED64: 1,
  TYPE_FLOAT: 5,
  TYPE_FIXED32: 5,
  TYPE_SFIXED32: 5,
  TYPE_STRING: 2,
  TYPE_BYTES: 2,
  TYPE_MESSAGE: 2,
}
const wireTypeOf = (type: string) => WIRE_TYPE[type] ?? 0

// ---------------------------------------------------------------------------------------------------
// Values

const HOSTILE_STRINGS = [
  '',
  ' ',
  "' OR '1'='1' --",
  '<script>alert(1)</script>',
  '../../../../etc/passwd',
  'a\u0000b',
  'line\r\nSet-Cookie: x=1',
  '%s%s%s%n',
  '\uFFFF',
  '😀'.repeat(20),
  '__proto__',
  'constructor',
  'NaN',
  '-1',
  '1e309',
  '18446744073709551616',
  'admin',
  'infer,admin',
  '*',
  'user@example.test',
]

/** Values worth trying in fields of these names, besides what their type allows. */
const FIELD_HINTS: Record<string, readonly string[]> = {
  model_name: ['cls', 'add', 'other', 'missing', 'CLS', 'cls/1', ''],
  triton_model_name: ['cls', 'add', 'other', 'models', ''],
  name: ['cls', 'add', 'x', 'a', 'b', 'fuzz-key', ''],
  model_version: ['', '1', '2', '0', '-1', '99999999999999999999'],
  version: ['', '1', '2', '0', '-1', 'latest'],
  datatype: ['FP32', 'FP16', 'FP64', 'INT64', 'INT8', 'UINT8', 'BOOL', 'BYTES', 'BF16', 'FP8', 'fp32', ''],
  service: ['', 'inference.GRPCInferenceService', 'cls', 'add', 'helix.auth.v1.AuthService', 'missing'],
  email: ['fuzz.admin@example.test', 'new@example.test', 'not-an-email', '@', 'a@b'],
  password: ['correct horse battery staple', 'short', 'x'.repeat(2000)],
  scopes: ['infer', 'admin', 'models:read', 'models:admin', 'infer:cls', 'infer:', 'nope'],
  expires_at: ['2099-01-01T00:00:00Z', '1970-01-01T00:00:00Z', 'yesterday', '2099-13-45T99:99:99Z'],
  quota_period: ['day', 'month', 'hour', 'week', 'century'],
  since: ['2020-01-01T00:00:00Z', '2099-01-01T00:00:00Z', 'not-a-date', '0'],
  until: ['2020-01-01T00:00:00Z', '2099-01-01T00:00:00Z', 'not-a-date'],
  key_id: ['00000000-0000-0000-0000-000000000000', 'not-a-uuid'],
  user_id: ['00000000-0000-0000-0000-000000000000', 'not-a-uuid'],
  id: ['00000000-0000-0000-0000-000000000000', 'not-a-uuid', 'req-1'],
  actor_user_id: ['00000000-0000-0000-0000-000000000000', 'not-a-uuid'],
  action_prefix: ['model.', 'apikey.', '%', '_'],
  refresh_token: ['', 'x.y.z', 'not-a-token'],
  token: ['', 'x'.repeat(43), 'not-a-token'],
  key: ['binary_data_output', 'classification', 'priority', 'timeout', 'sequence_id', 'binary_data_size'],
  repository_name: ['', 'models', 'missing'],
}

/** Integers at the edges of every protobuf integer type (varints are 64-bit two's complement). */
const EDGE_INTEGERS = [
  0n,
  1n,
  -1n,
  2n,
  255n,
  65_536n,
  2n ** 31n - 1n,
  -(2n ** 31n),
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  2n ** 63n,
  -(2n ** 63n),
  2n ** 64n - 1n,
]
const EDGE_FLOATS = [
  0,
  -0,
  1,
  -1,
  0.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  3.4028235e38,
  1e39,
  1.4e-45,
  5e-324,
  Number.MAX_VALUE,
]

function hostileString(r: Random): string {
  const kind = r.int(10)
  if (kind < 5) return r.pick(HOSTILE_STRINGS)
  if (kind < 9) {
    let out = ''
    const length = r.int(r.chance(0.9) ? 24 : 600)
    for (let i = 0; i < length; i++)
      out += String.fromCharCode(r.chance(0.9) ? 32 + r.int(95) : r.int(0xd000))
    return out
  }
  return 'A'.repeat(r.pick([1_000, 65_536, 1_000_000]))
}

/** A string field's bytes: a hint for its name, something hostile, or bytes that are not UTF-8. */
function stringBytes(r: Random, fieldName: string): Buffer {
  const hints = FIELD_HINTS[fieldName]
  if (hints && r.chance(0.6)) return Buffer.from(r.pick(hints))
  if (r.chance(0.08)) return Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80].slice(0, 1 + r.int(7)))
  return Buffer.from(hostileString(r))
}

function randomBytes(r: Random, length = r.pick([0, 1, 3, 4, 7, 16, 64, 1000])): Buffer {
  const out = Buffer.alloc(length)
  for (let i = 0; i < length; i++) out[i] = r.int(256)
  return out
}

function integer(r: Random, type: string): bigint {
  if (r.chance(0.5)) return r.pick(EDGE_INTEGERS)
  const small = BigInt(r.int(200))
  return type === 'TYPE_INT32' || type === 'TYPE_INT64' || type.startsWith('TYPE_S') ? small - 50n : small
}

/** One scalar value of `type`, as its wire type's bytes (without the tag). */
function scalar(r: Random, field: FieldDescriptor, w: Writer, enums: Descriptors, scope: string) {
  const type = field.type
  switch (type) {
    case 'TYPE_DOUBLE': {
      const b = Buffer.alloc(8)
      b.writeDoubleLE(r.chance(0.6) ? r.pick(EDGE_FLOATS) : (r.next() - 0.5) * 1e6)
      w.raw(b)
      return
    }
    case 'TYPE_FLOAT': {
      const b = Buffer.alloc(4)
      b.writeFloatLE(r.chance(0.6) ? r.pick(EDGE_FLOATS) : (r.next() - 0.5) * 1e3)
      w.raw(b)
      return
    }
    case 'TYPE_FIXED64':
    case 'TYPE_SFIXED64': {
      const b = Buffer.alloc(8)
      b.writeBigUInt64LE(BigInt.asUintN(64, integer(r, type)))
      w.raw(b)
      return
    }
    case 'TYPE_FIXED32':
    case 'TYPE_SFIXED32': {
      const b = Buffer.alloc(4)
      b.writeUInt32LE(Number(BigInt.asUintN(32, integer(r, type))))
      w.raw(b)
      return
    }
    case 'TYPE_BOOL':
      w.varint(r.chance(0.9) ? BigInt(r.int(2)) : r.pick(EDGE_INTEGERS))
      return
    case 'TYPE_ENUM': {
      const e = enums.enums.get(enums.resolve(scope, field.typeName))
      w.varint(e && r.chance(0.8) ? BigInt(r.pick(e.value).number) : r.pick(EDGE_INTEGERS))
      return
    }
    case 'TYPE_SINT32':
    case 'TYPE_SINT64': {
      const v = integer(r, type)
      w.varint(v >= 0n ? v * 2n : -v * 2n - 1n)
      return
    }
    default:
      w.varint(integer(r, type))
  }
}

/** A field whose value is a numeric scalar may also be written packed (as proto3 writers do). */
const packable = (type: string) => !['TYPE_STRING', 'TYPE_BYTES', 'TYPE_MESSAGE'].includes(type)

/**
 * A message of `fullName` written from its descriptor. `invalid` adds things a decoder must refuse or
 * skip: wrong wire types, unknown fields, over-long varints, lengths that lie.
 */
function encodeMessage(
  r: Random,
  d: Descriptors,
  fullName: string,
  depth: number,
  invalid: boolean,
  override?: (field: FieldDescriptor, w: Writer) => boolean,
): Buffer {
  const message = d.messages.get(fullName)
  if (!message) throw new Error(`no descriptor for ${fullName}`)
  const w = new Writer()
  const oneofChosen = new Map<number, number>()
  for (const field of message.field) {
    if (override?.(field, w)) continue
    const oneof = d.oneofOf(message, field)
    if (oneof >= 0) {
      // One member of a oneof, now and then two (the last one written wins).
      if (oneofChosen.has(oneof) && !r.chance(0.1)) continue
      if (!r.chance(0.5)) continue
      oneofChosen.set(oneof, field.number)
    } else if (!r.chance(depth === 0 ? 0.75 : 0.55)) continue
    const repeated = field.label === 'LABEL_REPEATED'
    const isMessage = field.type === 'TYPE_MESSAGE'
    const count = repeated
      ? r.pick(isMessage ? (depth > 1 ? [0, 1, 2] : [0, 1, 2, 3, 8, 40]) : [0, 1, 2, 3, 4, 16, 300, 5_000])
      : 1
    if (repeated && packable(field.type) && count > 0 && r.chance(0.6)) {
      const packed = new Writer()
      for (let i = 0; i < count; i++) scalar(r, field, packed, d, fullName)
      w.tag(field.number, 2).delimited(packed.finish(), invalid && r.chance(0.2) ? r.pick([-1, 1, 7]) : 0)
      continue
    }
    for (let i = 0; i < count; i++) {
      const wireType = invalid && r.chance(0.05) ? r.pick([0, 1, 2, 5, 3, 7]) : wireTypeOf(field.type)
      w.tag(field.number, wireType)
      if (wireType !== wireTypeOf(field.type)) {
        w.raw(randomBytes(r, r.int(12)))
        continue
      }
      if (isMessage) {
        const nested = d.resolve(fullName, field.typeName)
        const body = depth > 4 ? Buffer.alloc(0) : encodeMessage(r, d, nested, depth + 1, invalid)
        w.delimited(body, invalid && r.chance(0.05) ? r.pick([-1, 1, 1000]) : 0)
      } else if (field.type === 'TYPE_STRING') {
        w.delimited(stringBytes(r, field.name), invalid && r.chance(0.05) ? r.pick([-1, 3]) : 0)
      } else if (field.type === 'TYPE_BYTES') {
        w.delimited(randomBytes(r))
      } else {
        scalar(r, field, w, d, fullName)
      }
    }
  }
  if (invalid && r.chance(0.3)) {
    // An unknown field (a decoder skips it) or an over-long varint (a decoder refuses it).
    if (r.chance(0.5)) w.tag(1000 + r.int(1000), 2).delimited(randomBytes(r, r.int(20)))
    else
      w.tag(1 + r.int(8), 0).raw(
        Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
      )
  }
  return w.finish()
}

/** Bytes with a few changed, cut, dropped or doubled (a message that was almost right). */
function mutate(r: Random, bytes: Buffer): Buffer {
  const out = Buffer.from(bytes)
  switch (r.int(4)) {
    case 0:
      for (let i = 0; i < 1 + r.int(4) && out.length; i++) out[r.int(out.length)] = r.int(256)
      return out
    case 1:
      return out.subarray(0, r.int(out.length + 1))
    case 2:
      return Buffer.concat([out, out.subarray(0, r.int(out.length + 1))])
    default:
      return Buffer.concat([out.subarray(0, r.int(out.length + 1)), randomBytes(r, r.int(16))])
  }
}

// ---------------------------------------------------------------------------------------------------
// KServe inference requests for the served models, right or lying

interface TensorInfo {
  name: string
  datatype: string
  shape: number[]
}
interface ModelInfo {
  name: string
  inputs: TensorInfo[]
  outputs: TensorInfo[]
}

/** A ModelInferRequest (as an object for proto-loader's serializer) for one of `models`, with one lie or none. */
function inferRequest(r: Random, models: ModelInfo[]): Record<string, unknown> {
  const model = r.pick(models)
  const batch = r.pick([1, 1, 1, 2, 3])
  const inputs: Record<string, unknown>[] = []
  const raw: Buffer[] = []
  const lie = r.chance(0.75) ? r.int(14) : -1
  for (const input of model.inputs) {
    let shape: (number | string)[] = input.shape.map((dim) => (dim < 0 ? batch : dim))
    let datatype = input.datatype
    const elements = shape.reduce<number>((n, dim) => n * Number(dim), 1)
    let bytes = elements * ((isDatatype(datatype) ? elementSize(datatype) : undefined) ?? 4)
    switch (lie) {
      case 0:
        shape = [...shape, 1]
        break
      case 1:
        shape = shape.slice(1)
        break
      case 2:
        shape = shape.map((dim, i) =>
          i === shape.length - 1 ? r.pick([0, -1, -7, 2 ** 31, '9223372036854775807']) : dim,
        )
        break
      case 3:
        bytes += r.pick([-4, -1, 1, 3, 4096])
        break
      case 4:
        datatype = r.pick(['FP16', 'FP64', 'INT64', 'BYTES', 'BOOL', 'FP8', 'UNKNOWN', ''])
        break
      case 5:
        shape = r.pick([[], [0], [0, 0], Array.from({ length: 40 }, () => 1), [2 ** 20, 2 ** 20, 2 ** 20]])
        break
    }
    const tensor: Record<string, unknown> = {
      name: lie === 6 ? r.pick(['', 'nope', input.name.toUpperCase()]) : input.name,
      datatype,
      shape,
    }
    if (lie === 7 || lie === 8) {
      // Typed contents instead of raw bytes, of the right or a wrong length (or beside raw bytes).
      const field = CONTENTS_FIELD[datatype as keyof typeof CONTENTS_FIELD] ?? 'fp32_contents'
      const count = Math.max(0, Math.min(elements + (lie === 8 ? r.pick([-1, 1, 100]) : 0), 200_000))
      const value =
        field === 'bytes_contents'
          ? Array.from({ length: Math.min(count, 50) }, () => randomBytes(r, 3))
          : field === 'bool_contents'
            ? Array.from({ length: count }, () => r.chance(0.5))
            : Array.from({ length: count }, () => (r.chance(0.1) ? r.pick(EDGE_FLOATS) : r.next()))
      tensor.contents = {
        [field]: field.includes('int')
          ? (value as number[]).map((v) => (Number.isFinite(v) ? Math.trunc(v) : 0))
          : value,
      }
      if (lie === 8 && r.chance(0.5)) raw.push(randomBytes(r, Math.max(0, Math.min(bytes, 1 << 20))))
    } else {
      const data = Buffer.alloc(Math.max(0, Math.min(bytes, 8 << 20)))
      if (datatype === 'FP32' && r.chance(0.3)) {
        for (let i = 0; i + 4 <= data.length; i += 4) data.writeFloatLE(r.pick(EDGE_FLOATS), i)
      }
      raw.push(data)
    }
    if (lie === 9 && r.chance(0.5)) inputs.push({ ...tensor })
    inputs.push(tensor)
  }
  if (lie === 10) raw.push(randomBytes(r, 8))
  if (lie === 11) raw.pop()
  if (lie === 12) inputs.pop()
  const request: Record<string, unknown> = {
    model_name: lie === 13 ? r.pick(['', 'missing', model.name.toUpperCase()]) : model.name,
    model_version: r.pick(['', '', '', '1', '2', '-1']),
    id: r.chance(0.3) ? hostileString(r) : `fuzz-${r.int(1e6)}`,
    inputs,
    raw_input_contents: raw,
  }
  if (r.chance(0.3)) {
    request.outputs = model.outputs
      .map((o) => ({ name: r.chance(0.8) ? o.name : 'nope' }))
      .concat(r.chance(0.2) ? [{ name: hostileString(r) }] : [])
  }
  if (r.chance(0.2)) {
    const key = r.pick(FIELD_HINTS.key)
    request.parameters = {
      [key]: r.pick([
        { bool_param: true },
        { int64_param: r.pick(['-1', '0', '9223372036854775807', '5']) },
        { string_param: hostileString(r) },
      ]),
    }
  }
  return request
}

// ---------------------------------------------------------------------------------------------------
// The fuzzed methods

interface Method {
  /** /package.Service/Method */
  path: string
  requestType: string
  clientStream: boolean
  serverStream: boolean
  serializer: MethodDefinition<unknown, unknown>['requestSerialize']
  responseDeserialize: MethodDefinition<unknown, unknown>['responseDeserialize']
}

function methodsOf(definition: Record<string, unknown>): Method[] {
  const out: Method[] = []
  for (const entry of Object.values(definition)) {
    if ((entry as { format?: string }).format) continue
    for (const m of Object.values(entry as Record<string, MethodDefinition<unknown, unknown>>)) {
      const type = m.requestType as unknown as { type: { name: string }; fileDescriptorProtos: unknown }
      const requestType = Object.keys(definition).find(
        (key) => definition[key] === (m.requestType as unknown),
      )
      out.push({
        path: m.path,
        requestType:
          requestType ?? `${m.path.split('/')[1].split('.').slice(0, -1).join('.')}.${type.type.name}`,
        clientStream: m.requestStream,
        serverStream: m.responseStream,
        serializer: m.requestSerialize,
        responseDeserialize: m.responseDeserialize,
      })
    }
  }
  return out
}

/** How a call ended. */
interface Outcome {
  code: status | 'no status'
  details: string
  /** ModelStreamInfer answers a failed message in the stream: those error_messages. */
  inStream?: string[]
}

const pass = (b: Buffer) => b

const REFLECTION_PATHS = [
  '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
  '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
]

describe('fuzzing every gRPC method from its .proto descriptors', () => {
  let world: IdentityWorld
  let d: Daemon
  let server: GrpcServer
  let grpc: GrpcClient
  const credentialsFor: (string | undefined)[] = []
  const models: ModelInfo[] = []
  let descriptors: Descriptors
  let methods: Method[]

  beforeAll(async () => {
    world = await identityWorld()
    await addToRepository(world.database.home.modelsDir, 'cls', await readFile(CLS_MODEL_PATH))
    d = await daemon(world, {
      rate_limit: {
        per_key_per_min: 1_000_000_000,
        per_ip_per_min: 1_000_000_000,
        auth_per_ip_per_min: 1_000_000_000,
      },
    })
    const deps = d.identity.deps
    server = await startGrpcServer(
      { host: '127.0.0.1', port: 0, maxMessageBytes: MAX_MESSAGE_BYTES },
      {
        service: d.service,
        identity: d.identity,
        metrics: new HelixMetrics(d.service, { defaultMetrics: false }),
        logger: { debug() {}, info() {}, warn() {}, error() {} },
        config: deps.config,
        settings: {
          host: '127.0.0.1',
          port: 8080,
          grpcPort: 8081,
          grpcMaxMessageBytes: MAX_MESSAGE_BYTES,
          tls: false,
          mtls: false,
          bodyLimitBytes: 1 << 20,
          drainTimeoutMs: 1000,
          logLevel: 'info',
          logFormat: 'json',
          modelsDir: world.database.home.modelsDir,
        },
      },
    )
    const password = 'correct horse battery staple'
    const { user } = await createAccount(deps, { email: 'fuzz.admin@example.test', password, role: 'admin' })
    const admin = (
      await createKey(deps, CLI_ACTOR, { name: 'fuzz-admin', scopes: ['admin'], userId: user.id })
    ).key
    const infer = (await createKey(deps, CLI_ACTOR, { name: 'fuzz-infer', scopes: ['infer'] })).key
    grpc = new GrpcClient(server.target, credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    })
    const { definition } = loadProtos()
    descriptors = new Descriptors(definition as unknown as Record<string, unknown>)
    methods = methodsOf(definition as unknown as Record<string, unknown>)
    const byPath = new Map(methods.map((m) => [m.path, m]))
    const unary = <T>(path: string, request: unknown, token?: string) =>
      new Promise<T>((resolve, reject) => {
        const m = byPath.get(path)!
        const md = new Metadata()
        if (token) md.set('authorization', `Bearer ${token}`)
        grpc.makeUnaryRequest(path, m.serializer, m.responseDeserialize, request, md, (err, res) =>
          err ? reject(err) : resolve(res as T),
        )
      })
    const login = await unary<{ access_token: string }>('/helix.auth.v1.AuthService/Login', {
      email: 'fuzz.admin@example.test',
      password,
    })
    credentialsFor.push(
      admin,
      admin,
      admin,
      admin,
      infer,
      login.access_token,
      'hx_forged000000000000000000000000',
      undefined,
    )
    // The served models' tensors, as ModelMetadata tells a client.
    const index = await unary<{ models: { name: string }[] }>(
      '/inference.GRPCInferenceService/RepositoryIndex',
      {},
      admin,
    )
    for (const name of new Set(index.models.map((m) => m.name))) {
      const meta = await unary<{ inputs: TensorInfo[]; outputs: TensorInfo[] }>(
        '/inference.GRPCInferenceService/ModelMetadata',
        { name },
        admin,
      )
      const tensor = (t: TensorInfo) => ({ ...t, shape: t.shape.map(Number) })
      models.push({ name, inputs: meta.inputs.map(tensor), outputs: meta.outputs.map(tensor) })
    }
  }, 180_000)
  afterAll(async () => {
    grpc?.close()
    await server?.shutdown(1000)
    await d?.close()
    await world?.teardown()
  })

  /** One generated request message for `m`: schema-driven, a KServe inference request, or mutated bytes. */
  function message(r: Random, m: Method): { bytes: Buffer; kind: string } {
    const choice = r.int(10)
    if (m.requestType === 'inference.ModelInferRequest' && choice < 5) {
      const request = inferRequest(r, models)
      const bytes = m.serializer(request)
      const kind = `infer ${request.model_name}`
      return r.chance(0.15) ? { bytes: mutate(r, bytes), kind: `${kind}+mutated` } : { bytes, kind }
    }
    if (m.path.endsWith('/WatchStats') && choice < 6) {
      // Mostly short intervals, so that the stream sends something before it is cancelled.
      return {
        bytes: m.serializer({
          interval_ms: r.pick([0, 1, 99, 100, 250, 4_294_967_295]),
          max_snapshots: r.pick([0, 1, 2, 3, 4_294_967_295]),
          include_gpus: r.chance(0.3),
        }),
        kind: 'watch',
      }
    }
    const invalid = choice >= 7
    const bytes = encodeMessage(r, descriptors, m.requestType, 0, invalid)
    return choice === 9
      ? { bytes: mutate(r, bytes), kind: 'schema+mutated' }
      : { bytes, kind: invalid ? 'schema+invalid' : 'schema' }
  }

  function metadataFor(r: Random): { metadata: Metadata; who: string } {
    const token = r.pick(credentialsFor)
    const metadata = new Metadata()
    if (token) metadata.set('authorization', `Bearer ${token}`)
    // Below Node's HTTP/2 header list limit: a larger header block closes the whole connection (below).
    if (r.chance(0.05))
      metadata.set(
        'x-request-id',
        hostileString(r)
          .replace(/[^\x20-\x7e]/g, 'a')
          .slice(0, 16_000),
      )
    if (r.chance(0.05)) metadata.set('x-forwarded-for', r.pick(['1.2.3.4', 'not-an-ip', '::1, 10.0.0.1']))
    if (r.chance(0.03))
      metadata.set(
        'traceparent',
        r.pick(['00-xyz', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']),
      )
    const who =
      token === undefined
        ? 'anonymous'
        : token.startsWith('hx_forged')
          ? 'forged'
          : token === credentialsFor[4]
            ? 'infer'
            : token === credentialsFor[5]
              ? 'jwt'
              : 'admin'
    return { metadata, who }
  }

  function callUnary(m: Method, bytes: Buffer, metadata: Metadata, deadlineMs: number): Promise<Outcome> {
    return new Promise((resolve) => {
      grpc.makeUnaryRequest(
        m.path,
        pass,
        pass,
        bytes,
        metadata,
        { deadline: Date.now() + deadlineMs },
        (err) => {
          resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: '' })
        },
      )
    })
  }

  /** A server stream: read until it ends, cancelling it after `cancelAfterMs` (it may run forever). */
  function callServerStream(
    m: Method,
    bytes: Buffer,
    metadata: Metadata,
    cancelAfterMs: number,
  ): Promise<Outcome & { messages: number }> {
    return new Promise((resolve) => {
      const call: ClientReadableStream<Buffer> = grpc.makeServerStreamRequest(
        m.path,
        pass,
        pass,
        bytes,
        metadata,
        {
          deadline: Date.now() + CALL_DEADLINE_MS,
        },
      )
      let messages = 0
      const timer = setTimeout(() => call.cancel(), cancelAfterMs)
      call.on('data', () => {
        messages += 1
      })
      call.on('error', (err: ServiceError) => {
        clearTimeout(timer)
        resolve({ code: err.code, details: err.details, messages })
      })
      call.on('status', (s: { code: status; details: string }) => {
        if (s.code === status.OK) {
          clearTimeout(timer)
          resolve({ code: s.code, details: s.details, messages })
        }
      })
    })
  }

  /** ModelStreamInfer: several messages, then half-close (or a cancel after the first answer). */
  function callBidi(
    m: Method,
    messages: Buffer[],
    metadata: Metadata,
    cancelEarly: boolean,
  ): Promise<Outcome> {
    return new Promise((resolve) => {
      const call: ClientDuplexStream<Buffer, Buffer> = grpc.makeBidiStreamRequest(
        m.path,
        pass,
        pass,
        metadata,
        {
          deadline: Date.now() + CALL_DEADLINE_MS,
        },
      )
      const inStream: string[] = []
      call.on('data', (answer: Buffer) => {
        const decoded = m.responseDeserialize(answer) as { error_message?: string }
        if (decoded.error_message) inStream.push(decoded.error_message)
        if (cancelEarly) call.cancel()
      })
      call.on('error', (err: ServiceError) => resolve({ code: err.code, details: err.details, inStream }))
      call.on('status', (s: { code: status; details: string }) => {
        if (s.code === status.OK) resolve({ code: s.code, details: s.details, inStream })
      })
      for (const bytes of messages) call.write(bytes)
      call.end()
    })
  }

  /**
   * One raw HTTP/2 request to `path`: a gRPC frame (or several, or none) built by hand. Resolves with
   * the grpc-status the daemon sent (in the headers of a trailers-only answer, or the trailers).
   */
  function rawCall(
    r: Random,
    path: string,
    streaming: boolean,
    token: string | undefined,
    body: Buffer[],
  ): Promise<{ code: status | 'no status'; details: string; what: string }> {
    return new Promise((resolve) => {
      // Node's http2 client resets its own stream with ENHANCE_YOUR_CALM (RST 11) once a session holds
      // more than maxSessionMemory (10 MB by default) of unsent data: a body of tens of MB written to a
      // daemon busy with other suites did, and the call then had no status from the daemon to check.
      const session = connect(`http://${server.target}`, { maxSessionMemory: 1024 })
      session.on('error', () => {})
      const headers: Record<string, string> = {
        ':method': 'POST',
        ':path': path,
        'content-type': r.chance(0.9)
          ? r.pick(['application/grpc', 'application/grpc+proto'])
          : r.pick(['application/json', 'text/plain', 'application/grpcx']),
        te: 'trailers',
      }
      const encoding = r.chance(0.3) ? r.pick(['gzip', 'deflate', 'identity', 'br', 'snappy']) : undefined
      if (encoding) headers['grpc-encoding'] = encoding
      if (r.chance(0.1)) headers['grpc-timeout'] = r.pick(['1S', '100m', '99999999H', '1x', '-1S', ''])
      if (token) headers.authorization = `Bearer ${token}`
      const what = `${headers['content-type']} ${encoding ?? ''} ${headers['grpc-timeout'] ?? ''}`.trim()
      const stream = session.request(headers)
      let settled = false
      const done = (code: status | 'no status', details: string) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        stream.close()
        session.destroy()
        resolve({ code, details, what })
      }
      const timer = setTimeout(() => done('no status', 'no answer in time'), CALL_DEADLINE_MS)
      const read = (h: Record<string, unknown>) => {
        const code = h['grpc-status']
        if (code !== undefined)
          done(Number(code) as status, decodeURIComponent(String(h['grpc-message'] ?? '')))
      }
      stream.on('response', (h) => {
        // A content-type that is not application/grpc gets HTTP 415 (gRPC over HTTP/2 says so).
        if (Number(h[':status']) === 415 && !headers['content-type'].startsWith('application/grpc'))
          done(status.INVALID_ARGUMENT, 'HTTP 415')
        else if (Number(h[':status']) !== 200 && h['grpc-status'] === undefined)
          done('no status', `HTTP ${h[':status']}`)
        else read(h)
      })
      stream.on('trailers', read)
      // A server-streaming method that answers with messages is streaming, as it should, until cancelled.
      stream.on('data', () => {
        if (streaming) setTimeout(() => done(status.OK, 'streaming'), 50)
      })
      stream.on('close', () => done('no status', `stream closed (RST ${stream.rstCode})`))
      stream.on('error', () => {})
      for (const part of body) stream.write(part)
      stream.end()
    })
  }

  /** A length-prefixed gRPC frame: compressed flag, 4-byte big-endian length, message bytes. */
  function frame(flag: number, length: number, payload: Buffer): Buffer {
    const head = Buffer.alloc(5)
    head.writeUInt8(flag, 0)
    head.writeUInt32BE(length >>> 0, 1)
    return Buffer.concat([head, payload])
  }

  it(`${CASES} cases: a status for every call, never UNKNOWN or INTERNAL, no hang, bounded memory`, async () => {
    const services = new Set(methods.map((m) => m.path.split('/')[1]))
    // Every service of every shipped .proto file is there (reflection is @grpc/reflection's own).
    expect(services.size).toBe(PROTO_FILES.length)
    expect(methods.length).toBeGreaterThan(30)
    expect(models.map((m) => m.name)).toContain('cls')
    const broken: string[] = []
    const codes = new Map<string, number>()
    const count = (label: string) => codes.set(label, (codes.get(label) ?? 0) + 1)
    /** One answer's details for each code seen, for the summary. */
    const detailsByCode = new Map<string, string>()
    const note = (o: Outcome) => {
      const code = typeof o.code === 'number' ? status[o.code] : o.code
      // Every distinct reason for the codes that may stand for trouble, the first one for the rest.
      const distinct = ['UNAVAILABLE', 'RESOURCE_EXHAUSTED', 'DEADLINE_EXCEEDED', 'CANCELLED'].includes(code)
      const key = distinct ? `${code}: ${o.details.replace(/[\d.]+s\b.*/, '…').slice(0, 160)}` : code
      if (!detailsByCode.has(key)) detailsByCode.set(key, o.details.slice(0, 160))
    }
    const rssStart = process.memoryUsage().rss
    let rssPeak = rssStart
    const heapStart = await liveHeap()
    const started = Date.now()
    let nextCase = 0

    const inference = methods.filter((m) => m.requestType === 'inference.ModelInferRequest')
    expect(inference.length).toBe(2)
    /** No status, UNKNOWN or INTERNAL (gRPC's 5xx), or the daemon dropping the shared connection. */
    const bad = (o: { code: status | 'no status'; details: string }) =>
      o.code === 'no status' ||
      o.code === status.UNKNOWN ||
      o.code === status.INTERNAL ||
      (o.code === status.UNAVAILABLE && /Connection dropped|Stream refused/.test(o.details))

    const inFlight = new Map<number, string>()
    async function runCase(i: number) {
      // Each case has its own generator, so a case replays from the seed whatever the lanes did.
      const r = prng(SEED + i * 7919)
      // A quarter of the cases go to the inference methods, the largest surface; the rest to any method.
      const m = r.chance(0.25) ? r.pick(inference) : r.pick(methods)
      const { metadata, who } = metadataFor(r)
      const label = (o: Outcome) =>
        `${m.path.split('/')[2]} ${typeof o.code === 'number' ? status[o.code] : o.code}`
      inFlight.set(i, m.path.split('/')[2])
      // What else ran meanwhile, for failures that only concurrency causes.
      const others = () =>
        [...inFlight.entries()]
          .filter(([j]) => j !== i)
          .map(([j, name]) => `#${j} ${name}`)
          .join(', ')
      const atStart = others()
      const report = (kind: string, o: Outcome, extra = '') =>
        broken.push(
          `#${i} ${m.path} (${kind}, ${who}) → ${typeof o.code === 'number' ? status[o.code] : o.code}: ${o.details.slice(0, 200)}${extra} [in flight: ${atStart}; at the end: ${others()}]`,
        )
      if (r.chance(0.12)) {
        // Raw HTTP/2 with a hand-built frame.
        const payload = r.chance(0.5) ? message(r, m).bytes : randomBytes(r, r.pick([0, 1, 5, 64, 4096]))
        const variant = r.int(8)
        const body =
          variant === 0
            ? [frame(0, payload.length + 1 + r.int(100), payload)] // the length claims more than is sent
            : variant === 1
              ? [frame(0, Math.max(0, payload.length - 1 - r.int(4)), payload)] // less: the rest is a broken next frame
              : variant === 2
                ? [frame(1, payload.length, payload)] // compressed flag; compressed or not as grpc-encoding says
                : variant === 3
                  ? [frame(1, 0, Buffer.alloc(0)).subarray(0, r.int(5))] // a frame header cut short
                  : variant === 4
                    ? [frame(r.pick([2, 128, 255]), payload.length, payload)]
                    : variant === 5
                      ? [frame(0, 0xffff_ffff, payload)] // a 4 GiB message announced
                      : variant === 6
                        ? []
                        : [
                            frame(1, gzipSync(payload).length, gzipSync(payload)),
                            frame(0, payload.length, payload),
                          ]
        // Now and then server reflection's stream (its definitions are @grpc/reflection's own).
        const path = r.chance(0.05) ? r.pick(REFLECTION_PATHS) : r.chance(0.95) ? m.path : `${m.path}x`
        const o = await rawCall(r, path, m.serverStream && !m.clientStream, r.pick(credentialsFor), body)
        count(`raw ${typeof o.code === 'number' ? status[o.code] : o.code}`)
        // gRPC's status code table: a message that does not decompress with an algorithm the server
        // supports is INTERNAL, generated by the library (grpc-js) before any helix code runs.
        const undecompressable =
          o.code === status.INTERNAL &&
          o.details === 'Failed to decompress message' &&
          /gzip|deflate/.test(o.what)
        if (bad(o) && !undecompressable)
          report(`raw frame variant ${variant}, ${o.what}`, { code: o.code, details: o.details })
        return
      }
      if (r.chance(0.01)) {
        // Metadata beyond HTTP/2's header list limit, on a connection of its own: Node's HTTP/2 layer
        // refuses the header block (RST_STREAM COMPRESSION_ERROR, which grpc-js clients report as
        // INTERNAL) before any gRPC code runs, or that connection stalls until the deadline; either
        // way only that connection is lost and the daemon goes on serving.
        const own = new GrpcClient(server.target, credentials.createInsecure())
        metadata.set('x-padding', 'A'.repeat(r.pick([100_000, 1_000_000])))
        const o = await new Promise<Outcome>((resolve) =>
          own.makeUnaryRequest(
            m.path,
            pass,
            pass,
            message(r, m).bytes,
            metadata,
            { deadline: Date.now() + CALL_DEADLINE_MS },
            (err) =>
              resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: '' }),
          ),
        )
        own.close()
        count(`oversized metadata ${typeof o.code === 'number' ? status[o.code] : o.code}`)
        const refused = o.code === status.INTERNAL && /RST_STREAM with code 9/.test(o.details)
        if (bad(o) && !refused) report('oversized metadata', o)
        return
      }
      const shortDeadline = r.chance(0.03)
      if (m.clientStream) {
        const msgs = Array.from({ length: r.pick([0, 1, 2, 3, 5]) }, () => message(r, m).bytes)
        const o = await callBidi(m, msgs, metadata, r.chance(0.2))
        count(label(o))
        note(o)
        const internal = (o.inStream ?? []).filter((e) => /internal server error/i.test(e))
        if (bad(o) || o.code === status.DEADLINE_EXCEEDED || internal.length)
          report(`${msgs.length} messages`, o, internal.length ? ` (in-stream: ${internal.join('; ')})` : '')
        return
      }
      const { bytes, kind } = message(r, m)
      if (m.serverStream) {
        const o = await callServerStream(m, bytes, metadata, r.pick([0, 50, 200, 600]))
        count(label(o))
        note(o)
        if (bad(o)) report(kind, o)
        return
      }
      const o = await callUnary(m, bytes, metadata, shortDeadline ? r.pick([1, 5, 20]) : CALL_DEADLINE_MS)
      count(kind.startsWith('infer ') ? `${label(o)} (${kind})` : label(o))
      note(o)
      if (bad(o) || (o.code === status.DEADLINE_EXCEEDED && !shortDeadline))
        report(`${kind}, ${bytes.length} bytes: ${bytes.subarray(0, 48).toString('hex')}`, o)
    }

    await Promise.all(
      Array.from({ length: LANES }, async () => {
        while (nextCase < CASES && broken.length < 40) {
          const i = nextCase++
          await runCase(i)
          inFlight.delete(i)
          if (i % 200 === 0) {
            rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
            d.logs.lines.length = 0
          }
        }
      }),
    )

    const seconds = (Date.now() - started) / 1000
    const heapGrowth = (await liveHeap()) - heapStart
    const summary = [...codes.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([c, n]) => `${c}: ${n}`)
      .join(', ')
    console.log(
      `gRPC fuzz seed ${SEED}: ${CASES} cases over ${methods.length} methods in ${seconds.toFixed(1)} s; live heap +${Math.round(heapGrowth / 2 ** 20)} MiB, peak RSS +${Math.round((rssPeak - rssStart) / 2 ** 20)} MiB\n${summary}`,
    )
    console.log(
      [...detailsByCode.entries()]
        .map(([key, details]) => (key.includes(':') ? key : `${key}: ${details}`))
        .join('\n'),
    )
    expect(broken, `seed ${SEED} (HELIX_GRPC_FUZZ_SEED=${SEED} replays it)\n${broken.join('\n')}`).toEqual([])
    expect(heapGrowth, 'live heap growth').toBeLessThan(128 * 2 ** 20)
    // The process holds both ends (and the fuzzer's own messages of up to ~60 MB): RSS is bounded loosely.
    expect(rssPeak - rssStart, 'peak RSS growth').toBeLessThan(1024 * 2 ** 20)
    // Still up: a fresh connection's ServerLive, and the health service, answer.
    const fresh = new GrpcClient(server.target, credentials.createInsecure())
    try {
      const live = methods.find((m) => m.path.endsWith('/ServerLive'))!
      const answer = await new Promise<Buffer>((resolve, reject) =>
        fresh.makeUnaryRequest(
          live.path,
          live.serializer,
          pass,
          {},
          new Metadata(),
          { deadline: Date.now() + 5000 },
          (err, res) => (err ? reject(err) : resolve(res as Buffer)),
        ),
      )
      expect(live.responseDeserialize(answer)).toEqual({ live: true })
    } finally {
      fresh.close()
    }
  }, 3_600_000)
})
