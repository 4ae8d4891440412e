import type { EmbeddingsFrame } from '../../shared/realtime-protocol.js'
import {
  callerKey,
  cancelledError,
  type RequestContext,
  type RequestOutcome,
  textTarget,
} from './request-context.js'

/** The inputs of an embeddings frame as the engine takes them: texts or token id arrays. */
export function embeddingInputs(input: EmbeddingsFrame['input']): Array<string | number[]> {
  if (typeof input === 'string') return [input]
  if (input.every((item) => typeof item === 'number')) return [input as number[]]
  return input as Array<string | number[]>
}

/** An embeddings frame: one result frame with OpenAI's `data` and `usage`. */
export async function runEmbeddings(
  frame: EmbeddingsFrame,
  context: RequestContext,
): Promise<RequestOutcome> {
  const { metrics, session, stream, principal } = context
  const key = callerKey(principal)
  const { modelName, modelVersion, engine } = await textTarget(context, frame, 'embeddings')
  const inputs = embeddingInputs(frame.input)
  let result: Awaited<ReturnType<typeof engine.embed>>
  try {
    result = await engine.embed({
      inputs,
      ...(frame.dimensions !== undefined ? { dimensions: frame.dimensions } : {}),
      ...(key ? { key } : {}),
      signal: stream.cancel,
    })
  } catch (err) {
    const outcome = stream.cancel.aborted ? 'cancelled' : 'error'
    metrics.textDone(modelName, 'realtime', outcome, { prompt: 0, completion: 0 }, principal?.keyId ?? null)
    throw stream.cancel.aborted ? cancelledError(stream) : err
  }
  if (stream.cancel.aborted) throw cancelledError(stream)
  const prompt = result.promptTokens
  metrics.textDone(modelName, 'realtime', 'none', { prompt, completion: 0 }, principal?.keyId ?? null)
  session.emit(stream, 'result', {
    model: modelName,
    model_version: modelVersion,
    data: result.embeddings.map((embedding, index) => ({
      object: 'embedding',
      index,
      embedding: Array.from(embedding),
    })),
    usage: { prompt_tokens: prompt, total_tokens: prompt },
  })
  return { model: modelName, version: modelVersion, items: inputs.length, tokens: prompt }
}
