import { Client } from '@grpc/grpc-js'
import { Failure, UserError } from '../../shared/errors.js'
import { answerProblem, type InferAnswer, idField } from '../grpc-answer.js'
import type { GrpcAnswerCheck, GrpcRequestPlan } from '../types.js'
import { parseGrpcUrl } from './grpc-address.js'
import { callMetadata, channelCredentials, channelOptions } from './grpc-channel.js'
import { preflightError, probeStream, probeUnary } from './grpc-preflight.js'
import { inferenceMethods } from './grpc-protos.js'
import type { ModelMetadataDoc } from './kserve.js'
import { ELEMENT_BYTES, tensorBytes } from './kserve-binary.js'
import { type InputSpec, type KserveRequest, randomRequest } from './kserve-tensors.js'
import { readJsonFile } from './read-input.js'
import type { TargetOptions } from './target-options.js'

/** ModelMetadataResponse as decoded: shapes are int64, so decimal strings. */
interface GrpcModelMetadata {
  name: string
  versions: string[]
  platform: string
  inputs: { name: string; datatype: string; shape: string[] }[]
  outputs: { name: string; datatype: string; shape: string[] }[]
}

/**
 * The ModelInfer call the gRPC targets replay, for --model: the model's metadata is read first over
 * gRPC (ModelMetadata, so an unknown model or a bad key fails before any load), the tensors come
 * from --input or random data matching the inputs (as for --binary) and travel in
 * raw_input_contents. One call (and, for grpc-stream, one message over ModelStreamInfer) is sent
 * and its answer checked; every later answer must match it.
 */
export async function grpcPlan(
  options: TargetOptions,
): Promise<{ plan: GrpcRequestPlan; metadata: ModelMetadataDoc; url: string }> {
  const address = parseGrpcUrl(options.url)
  if (!options.model) {
    throw new UserError('BENCH_MODEL_REQUIRED', `--model is required for --target ${options.kind}`, {
      hint: 'Pass --model cls (see `helix models list`).',
    })
  }
  const model = options.model
  const tls = address.tls ? (options.tls ?? {}) : undefined
  const where = { url: address.url, tls: address.tls, clientCert: Boolean(tls?.cert) }
  const metadataEntries: Record<string, string> = {
    ...options.headers,
    ...(options.key ? { authorization: `Bearer ${options.key}` } : {}),
  }
  const metadata = callMetadata(metadataEntries)
  const methods = inferenceMethods()
  const client = new Client(address.target, channelCredentials(tls), channelOptions())
  const notFound = () =>
    new UserError(
      'MODEL_NOT_FOUND',
      `Model "${model}"${options.modelVersion ? ` version ${options.modelVersion}` : ''} is not served at ${address.url}`,
      { hint: 'Check --model against `helix models list` (or the RepositoryIndex call).' },
    )
  try {
    const described = await probeUnary<GrpcModelMetadata>(
      client,
      methods.ModelMetadata,
      { name: model, version: options.modelVersion ?? '' },
      metadata,
    ).catch((err: unknown) => {
      throw preflightError(err, where, notFound)
    })
    const doc = metadataDoc(described)
    const request = options.inputFile
      ? await readJsonFile<KserveRequest>(options.inputFile, 'input')
      : randomRequest(doc.inputs, options.shapes)
    const encoded: Buffer = methods.ModelInfer.requestSerialize(inferRequest(request, model, options))
    const answer = await probeUnary<InferAnswer>(
      client,
      methods.ModelInfer,
      Buffer.concat([encoded, idField('probe')]),
      metadata,
      true,
    ).catch((err: unknown) => {
      throw preflightError(err, where, notFound)
    })
    const check = answerCheck(answer, doc, address.url)
    if (options.kind === 'grpc-stream') {
      const streamed = await probeStream(
        client,
        methods.ModelStreamInfer,
        Buffer.concat([encoded, idField('probe')]),
        metadata,
      ).catch((err: unknown) => {
        throw preflightError(err, where, notFound)
      })
      if (streamed.error_message) {
        throw new UserError(
          'BENCH_BAD_REQUEST',
          `${address.url} answered the ModelStreamInfer request with an error: ${streamed.error_message}`,
          { hint: 'Check --input and --shape against the model metadata.' },
        )
      }
      const problem = streamed.infer_response
        ? answerProblem(streamed.infer_response, check, 'probe')
        : 'no infer_response'
      if (problem) {
        throw new Failure(
          'BENCH_BAD_ANSWER',
          `${address.url} answered ModelStreamInfer unlike ModelInfer (${problem})`,
          { hint: 'The server must answer a stream message as it answers the same unary call.' },
        )
      }
    }
    return {
      plan: {
        protocol: 'grpc',
        target: address.target,
        method: options.kind === 'grpc-stream' ? 'stream' : 'unary',
        metadata: metadataEntries,
        request: encoded,
        check,
        channels: Math.max(1, options.channels ?? 1),
        ...(tls ? { tls } : {}),
      },
      metadata: doc,
      url: address.url,
    }
  } finally {
    client.close()
  }
}

function metadataDoc(m: GrpcModelMetadata): ModelMetadataDoc {
  const spec = (t: GrpcModelMetadata['inputs'][number]): InputSpec => ({
    name: t.name,
    datatype: t.datatype,
    shape: t.shape.map(Number),
  })
  return {
    name: m.name,
    versions: m.versions,
    platform: m.platform,
    inputs: m.inputs.map(spec),
    outputs: m.outputs.map(spec),
  }
}

/** A KServe JSON infer request as a ModelInferRequest with raw_input_contents. */
function inferRequest(request: KserveRequest, model: string, options: TargetOptions): object {
  if (!Array.isArray(request.inputs) || request.inputs.length === 0) {
    throw new UserError(
      'BENCH_INPUT_INVALID',
      `--input ${options.inputFile} is not a KServe v2 infer request (no "inputs")`,
      { hint: 'Give a body like {"inputs":[{"name","shape","datatype","data"}]}.' },
    )
  }
  for (const input of request.inputs) {
    if (!Array.isArray(input.data)) {
      throw new UserError(
        'BENCH_INPUT_INVALID',
        `--input ${options.inputFile}: input "${input.name}" has no "data"`,
        {
          hint: 'Give every input its elements in "data" (the gRPC targets send them as raw_input_contents).',
        },
      )
    }
  }
  return {
    model_name: model,
    model_version: options.modelVersion ?? '',
    inputs: request.inputs.map((input) => ({
      name: input.name,
      datatype: input.datatype,
      shape: input.shape,
    })),
    outputs: (request.outputs ?? []).map((output) => ({ name: output.name })),
    raw_input_contents: request.inputs.map((input) => tensorBytes(input)),
  }
}

/**
 * What every answer must look like, from the probe's answer once it is found consistent with the
 * model: the outputs the metadata lists, each with as many raw bytes as its shape holds. The same
 * request then always gets outputs of the same names, types and sizes.
 */
function answerCheck(answer: InferAnswer, doc: ModelMetadataDoc, url: string): GrpcAnswerCheck {
  const fail = (why: string) =>
    new Failure('BENCH_BAD_ANSWER', `${url} answered the benchmark request with ${why}`, {
      hint: 'A KServe v2 server answers raw_input_contents with one raw_output_contents entry per output, sized by its shape.',
    })
  if (answer.id !== 'probe') throw fail(`id "${answer.id}" instead of the request's "probe"`)
  if (answer.outputs.length === 0) throw fail('no outputs')
  const raw = answer.raw_output_contents
  if (raw.length > 0 && raw.length !== answer.outputs.length)
    throw fail(`${raw.length} raw_output_contents entries for ${answer.outputs.length} outputs`)
  const known = new Map((doc.outputs ?? []).map((o) => [o.name, o.datatype]))
  const outputs = answer.outputs.map((output, i) => {
    const datatype = known.get(output.name)
    if (known.size > 0 && datatype === undefined)
      throw fail(`output "${output.name}", which the model does not list`)
    if (datatype !== undefined && datatype !== output.datatype)
      throw fail(`output "${output.name}" as ${output.datatype}; the model says ${datatype}`)
    const size = ELEMENT_BYTES[output.datatype]
    const elements = output.shape.reduce((n, d) => n * Number(d), 1)
    if (raw.length > 0 && size !== undefined && raw[i].length !== elements * size)
      throw fail(`${raw[i].length} bytes for output "${output.name}" of shape [${output.shape.join(',')}]`)
    return {
      name: output.name,
      datatype: output.datatype,
      ...(raw.length > 0 ? { bytes: raw[i].length } : {}),
    }
  })
  return { outputs }
}
