import * as ort from 'onnxruntime-node'
import type { Tensor } from '../infer/types.js'
import { fromOrtTensor, toOrtTensor } from './onnx-tensors.js'

/**
 * One opened model, wherever it runs: on the calling thread (onnxruntime-node computes there, which
 * blocks the event loop for the length of a run) or in a worker thread.
 */
export interface OnnxSession {
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[]
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[]
  run(inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]>
  release(): Promise<void>
}

/** A session on the calling thread: no copies, but the event loop waits while it computes. */
export async function openInlineSession(
  modelPath: string,
  options: ort.InferenceSession.SessionOptions,
): Promise<OnnxSession> {
  return inlineSession(await ort.InferenceSession.create(modelPath, options))
}

/** An opened onnxruntime session as an OnnxSession that computes on the calling thread. */
export function inlineSession(session: ort.InferenceSession): OnnxSession {
  return {
    inputMetadata: session.inputMetadata,
    outputMetadata: session.outputMetadata,
    async run(inputs, outputNames) {
      const feeds: Record<string, ort.Tensor> = {}
      for (const tensor of inputs) feeds[tensor.name] = toOrtTensor(tensor)
      const results = outputNames ? await session.run(feeds, outputNames) : await session.run(feeds)
      return (outputNames ?? session.outputNames).map((name) =>
        fromOrtTensor(name, results[name] as ort.Tensor),
      )
    },
    release: () => session.release(),
  }
}
