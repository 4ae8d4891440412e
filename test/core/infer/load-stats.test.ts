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
    expect(
      loadFailureKind(
        'its onnxruntime worker threads stopped 3 times within 60 s (last: a run took longer than run_timeout_s (0.5 s), so its onnxruntime worker thread was stopped); load it again once the cause is fixed',
      ),
    ).toBe('crashed')
    expect(
      loadFailureKind(
        'an instance lost with its onnxruntime worker thread (its onnxruntime worker thread exited (code 0)) could not be reopened after 4 tries: models/a/1/model.onnx: No such file',
      ),
    ).toBe('crashed')
    // The same with isolation: process, whose instances run in worker processes.
    expect(
      loadFailureKind(
        'its onnxruntime worker processes stopped 3 times within 60 s (last: its onnxruntime worker process was killed by SIGSEGV); load it again once the cause is fixed',
      ),
    ).toBe('crashed')
    expect(
      loadFailureKind(
        'an instance lost with its onnxruntime worker process (its onnxruntime worker process was killed by SIGBUS) could not be reopened after 4 tries: models/c/1/model.onnx: external data file too short',
      ),
    ).toBe('crashed')
  })

  it('counts a loaded version that stopped serving as a failure without load time', () => {
    const stats = new LoadStats()
    stats.record('a', 0.5)
    stats.fail('a', 'its onnxruntime worker threads stopped 3 times within 60 s (last: …)')
    expect(stats.list()).toEqual([
      { model: 'a', loads: 1, loadSeconds: 0.5, lastLoadSeconds: 0.5, failures: { crashed: 1 } },
    ])
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
