import type { ServerDuplexStream, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js'
import { rowsOf } from '../../core/identity/access.js'
import type { Principal } from '../../core/identity/principal.js'
import { RequestCancel } from '../../core/infer/cancel-signal.js'
import type { InferResult, ModelService } from '../../core/infer/types.js'
import { UserError } from '../../shared/errors.js'
import { PACKAGE_VERSION } from '../../shared/package-version.js'
import { metadataHeaders, metadataValue } from '../call-auth.js'
import {
  bidiStream,
  callTraceContext,
  type GrpcContext,
  httpEquivalent,
  requestIdOf,
  unary,
} from '../calls.js'
import { refuseMalformed } from '../request-decoding.js'
import { toServiceError } from '../status.js'
import {
  decodeInferRequest,
  encodeInferResponse,
  type GrpcInferRequest,
  type GrpcInferResponse,
} from './tensors.js'

const SERVICE = '/inference.GRPCInferenceService'

/** Extensions of the Open Inference Protocol this face implements (ServerMetadata). */
export const GRPC_EXTENSIONS = ['model_repository', 'model_stream_infer']

interface NameVersion {
  name: string
  version?: string
}

/** KServe sends the model name in field 1; Triton sends its repository name there and the model in field 2. */
interface RepositoryModelRequest {
  model_name?: string
  triton_model_name?: string
}

function repositoryModel(request: RepositoryModelRequest): string {
  const name = request.triton_model_name || request.model_name
  if (!name) throw new UserError('INVALID_INPUT', 'model_name is required.')
  return name
}

/** Milliseconds left until the call's deadline (undefined without one); a passed deadline fails now. */
function deadlineMs(call: { getDeadline(): Date | number }): number | undefined {
  const deadline = call.getDeadline()
  const at = deadline instanceof Date ? deadline.getTime() : deadline
  if (!Number.isFinite(at)) return undefined
  const left = at - Date.now()
  if (left <= 0)
    throw new UserError('INFER_TIMEOUT', 'The call deadline passed before the request was queued.')
  return Math.ceil(left)
}

/**
 * inference.GRPCInferenceService on the core's ModelService: the same router, scheduler, auth,
 * limits, usage and metrics as the REST routes, and the same error messages.
 */
export function inferenceService(service: ModelService, context: GrpcContext): UntypedServiceImplementation {
  const { auth } = context

  /** Runs one decoded inference for a principal, with its usage row and metrics. */
  async function infer(
    message: GrpcInferRequest,
    options: {
      principal: Principal | undefined
      call: { metadata: ServerUnaryCall<unknown, unknown>['metadata']; getPeer(): string }
      method: string
      signal: RequestCancel
      /** The unary call's deadline (streams have one for the whole stream, not per message). */
      deadline?: { getDeadline(): Date | number }
      perMessage: boolean
    },
  ): Promise<GrpcInferResponse> {
    const started = performance.now()
    const { principal, call } = options
    const model = message.model_name
    const version = message.model_version || undefined
    let items = 0
    let code = 0
    let answered: InferResult | undefined
    try {
      refuseMalformed(message)
      if (options.perMessage) await auth.authorizeMessage(principal, { scope: 'infer', model })
      const decoded = decodeInferRequest(message)
      items = rowsOf(decoded.request.inputs.map((t) => t.shape))
      await auth.chargeItems(principal, items)
      try {
        const timeoutMs = options.deadline ? deadlineMs(options.deadline) : undefined
        const traceContext = callTraceContext(call)
        answered = await service.infer({
          ...(traceContext ? { traceContext } : {}),
          ...decoded.request,
          headers: metadataHeaders(call.metadata),
          signal: options.signal,
          ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        })
      } catch (err) {
        context.metrics?.inferenceFailed('grpc', model, version, err)
        throw err
      }
      context.metrics?.inferenceDone('grpc', answered)
      return encodeInferResponse(answered, decoded.rawOutputs)
    } catch (err) {
      code = toServiceError(err).code
      throw err
    } finally {
      auth.record({
        principal,
        method: options.method,
        model,
        ...(answered ? { version: answered.modelVersion } : version ? { version } : {}),
        status: httpEquivalent(code),
        durationMs: performance.now() - started,
        items,
        ip: auth.clientAddress(call),
        ...(metadataValue(call.metadata, 'user-agent')
          ? { userAgent: metadataValue(call.metadata, 'user-agent') }
          : {}),
        requestId: requestIdOf(call.metadata),
      })
    }
  }

  const modelInfer = `${SERVICE}/ModelInfer`
  const streamInfer = `${SERVICE}/ModelStreamInfer`

  return {
    ServerLive: unary(context, `${SERVICE}/ServerLive`, async (call) => {
      await auth.authorize(call, { scope: 'models:read' }, { restPath: '/v2/health/live' })
      return { live: true }
    }),
    ServerReady: unary(context, `${SERVICE}/ServerReady`, async (call) => {
      await auth.authorize(call, { scope: 'models:read' }, { restPath: '/v2/health/ready' })
      return { ready: service.isReady() }
    }),
    ModelReady: unary<NameVersion, unknown>(context, `${SERVICE}/ModelReady`, async (call) => {
      const { name, version } = call.request
      await auth.authorize(
        call,
        { scope: 'models:read', model: name },
        { restPath: `/v2/models/${name}/ready` },
      )
      return { ready: service.modelReady(name, version || undefined) }
    }),
    ServerMetadata: unary(context, `${SERVICE}/ServerMetadata`, async (call) => {
      await auth.authorize(call, { scope: 'models:read' }, { restPath: '/v2' })
      return { name: 'helix', version: PACKAGE_VERSION, extensions: GRPC_EXTENSIONS }
    }),
    ModelMetadata: unary<NameVersion, unknown>(context, `${SERVICE}/ModelMetadata`, async (call) => {
      const { name, version } = call.request
      await auth.authorize(call, { scope: 'models:read', model: name }, { restPath: `/v2/models/${name}` })
      const meta = service.metadata(name, version || undefined)
      const tensor = (t: { name: string; datatype: string; shape: number[] }) => ({
        name: t.name,
        datatype: t.datatype,
        shape: t.shape.map(String),
      })
      return {
        name: meta.name,
        versions: meta.versions,
        platform: meta.platform,
        inputs: meta.inputs.map(tensor),
        outputs: meta.outputs.map(tensor),
      }
    }),
    ModelInfer: unary<GrpcInferRequest, GrpcInferResponse>(context, modelInfer, async (call) => {
      const model = call.request.model_name
      const principal = await auth.authorize(call, { scope: 'infer', model })
      const signal = new RequestCancel()
      // grpc-js cancels a call whose deadline passed; the scheduler's own timer drops that request
      // as a timeout (DEADLINE_EXCEEDED, counted as INFER_TIMEOUT), so only a client's cancel aborts.
      const deadline = call.getDeadline()
      const onCancel = () => {
        if (!(Number(deadline) <= Date.now())) signal.abort()
      }
      call.once('cancelled', onCancel)
      try {
        return await infer(call.request, {
          principal,
          call,
          method: modelInfer,
          signal,
          deadline: call,
          perMessage: false,
        })
      } finally {
        call.removeListener('cancelled', onCancel)
      }
    }),
    ModelStreamInfer: bidiStream<GrpcInferRequest, unknown>(context, streamInfer, async (call, drained) => {
      const principal = await auth.authorize(call, { scope: 'infer', perMessage: true })
      await answerInOrder(
        call,
        drained,
        (message, signal) =>
          infer(message, { principal, call, method: streamInfer, signal, perMessage: true }),
        context,
      )
    }),
    RepositoryIndex: unary<{ ready?: boolean }, unknown>(
      context,
      `${SERVICE}/RepositoryIndex`,
      async (call) => {
        await auth.authorize(call, { scope: 'models:read' }, { restPath: '/v2/repository/index' })
        return {
          models: service.index({ readyOnly: call.request.ready === true }).map((e) => ({
            name: e.name,
            version: e.version,
            state: e.state,
            reason: e.reason ?? '',
          })),
        }
      },
    ),
    RepositoryModelLoad: unary<RepositoryModelRequest, unknown>(
      context,
      `${SERVICE}/RepositoryModelLoad`,
      async (call) => {
        const name = repositoryModel(call.request)
        const principal = await auth.authorize(call, { scope: 'models:admin' })
        await service.load(name)
        auth.audit(principal, 'model.load', `model:${name}`, auth.clientAddress(call))
        return { model_name: name, isLoaded: true }
      },
    ),
    RepositoryModelUnload: unary<RepositoryModelRequest, unknown>(
      context,
      `${SERVICE}/RepositoryModelUnload`,
      async (call) => {
        const name = repositoryModel(call.request)
        const principal = await auth.authorize(call, { scope: 'models:admin' })
        await service.unload(name)
        auth.audit(principal, 'model.unload', `model:${name}`, auth.clientAddress(call))
        return { model_name: name, isUnloaded: true }
      },
    ),
  }
}

/**
 * ModelStreamInfer's loop: every message starts at once (so a stream keeps the batcher busy), answers
 * are written in request order, a failed request is answered with error_message and the stream goes
 * on. It ends when the client half-closes (after the last answer), when the client cancels (queued
 * work is dropped), or when the server drains (what is in flight is answered first).
 */
async function answerInOrder(
  call: ServerDuplexStream<GrpcInferRequest, unknown>,
  drained: Promise<void>,
  run: (message: GrpcInferRequest, signal: RequestCancel) => Promise<GrpcInferResponse>,
  context: GrpcContext,
): Promise<void> {
  const cancels = new Set<RequestCancel>()
  let tail: Promise<void> = Promise.resolve()
  let closing = false
  await new Promise<void>((resolve) => {
    const finish = () => {
      if (closing) return
      closing = true
      void tail.then(() => {
        if (!call.cancelled) call.end()
        resolve()
      })
    }
    call.on('data', (message: GrpcInferRequest) => {
      if (closing) return
      const signal = new RequestCancel()
      cancels.add(signal)
      const answer = run(message, signal).then(
        (response) => ({ infer_response: response }),
        (err: unknown) => ({
          error_message: toServiceError(err).details,
          infer_response: { model_name: message.model_name ?? '', model_version: '', id: message.id ?? '' },
        }),
      )
      tail = tail.then(async () => {
        const reply = await answer
        cancels.delete(signal)
        if (!call.cancelled) call.write(reply)
      })
    })
    call.on('end', finish)
    call.on('error', finish)
    call.on('cancelled', () => {
      for (const signal of cancels) signal.abort()
      closing = true
      void tail.then(resolve)
    })
    void drained.then(() => {
      // A draining server answers what it has and ends the stream; later messages are not read.
      if (!closing) context.logger.debug({}, 'draining: ending a ModelStreamInfer stream')
      finish()
    })
  })
}
