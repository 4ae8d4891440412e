import { describe, expect, it } from 'vitest'
import { LoadStats, loadFailureKind } from '../../../src/core/infer/load-stats.js'

describe('load statistics', () => {
  it('folds the lifecycle reasons into a few fixed kinds', () => {
    expect(loadFailureKind('models/cls/1/model.onnx is missing')).toBe('missing_file')
    expect(loadFailureKind('models.memory_budget (512 MiB) cannot hold it: it needs ~600 MiB')).toBe(
      'memory_budget',
    )
    expect(loadFailureKind('CUDA is unavailable (no GPU found); install …')).toBe('device')
    expect(loadFailureKind('max_batch_size 8 needs a dynamic first dimension on every input')).toBe('config')
    expect(loadFailureKind('warmup failed: shape mismatch')).toBe('warmup')
    expect(loadFailureKind('failed to load model.onnx: protobuf parsing failed')).toBe('invalid_model')
  })

  it('counts loads, their time and failures per model', () => {
    const stats = new LoadStats()
    stats.record('a', 0.5)
    stats.record('a', 0.25, 'failed to load model.onnx: bad bytes')
    stats.record('a', 0.125, 'models/a/2/model.onnx is missing')
    stats.record('b', 1)
    expect(stats.list()).toEqual([
      {
        model: 'a',
        loads: 1,
        loadSeconds: 0.875,
        lastLoadSeconds: 0.125,
        failures: { invalid_model: 1, missing_file: 1 },
      },
      { model: 'b', loads: 1, loadSeconds: 1, lastLoadSeconds: 1, failures: {} },
    ])
  })
})
