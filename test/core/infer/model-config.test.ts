import { describe, expect, it } from 'vitest'
import { parseModelConfig } from '../../../src/core/infer/model-config.js'
import { selectVersions } from '../../../src/core/infer/version-policy.js'

describe('parseModelConfig', () => {
  it('accepts every documented setting', () => {
    const text = `
max_batch_size: 16
max_queue_delay_ms: 1.5
preferred_batch_sizes: [4, 8]
instances: 2
device: cuda
gpu: 1
memory_budget_mb: 2048
version_policy: { latest: 2 }
traffic: [{ version: 1, weight: 90 }, { version: 2, weight: 10 }]
sticky_header: X-User-Id
shadow: { version: 3 }
warmup: [{ inputs: { x: { shape: [1, 4], data: [1, 2, 3, 4] } } }]
cache: { enabled: true, max_entries: 100 }
intra_op_threads: 4
inter_op_threads: 1
worker_threads: false
allow_spinning: true
queue: { max_size: 64, timeout_ms: 500 }
`
    expect(parseModelConfig(text)).toMatchObject({
      max_batch_size: 16,
      device: 'cuda',
      queue: { max_size: 64, timeout_ms: 500 },
      shadow: { version: 3 },
      worker_threads: false,
      allow_spinning: true,
    })
    expect(parseModelConfig('')).toEqual({})
    expect(parseModelConfig('version_policy: { all: true }')).toEqual({ version_policy: { all: true } })
  })

  it.each([
    ['max_batch_sise: 8', "config.yaml: unknown setting 'max_batch_sise'"],
    ['device: tpu', 'config.yaml: device: must be one of auto, cuda, webgpu, cpu (got "tpu")'],
    ['isolation: proces', 'config.yaml: isolation: must be one of thread, process (got "proces")'],
    ['max_batch_size: -1', 'config.yaml: max_batch_size: Expected integer to be greater or equal to 0'],
    ['version_policy: { latest: 1, all: true }', 'config.yaml: version_policy: Expected union value'],
    ['queue: { max_size: 0 }', 'config.yaml: queue.max_size: Expected integer to be greater or equal to 1'],
    ['sticky_header: "bad header"', "config.yaml: sticky_header: Expected string to match '^[A-Za-z0-9-]+$'"],
    ['- 1\n- 2', 'config.yaml must hold a mapping of settings'],
    ['42', 'config.yaml must hold a mapping of settings'],
    ['a: [', /^config.yaml is not valid YAML: /],
    ['traffic: [{ version: 1, weight: 0 }]', 'config.yaml: traffic weights must not all be 0'],
    [
      'traffic: [{ version: 2, weight: 5 }]\nshadow: { version: 2 }',
      'config.yaml: shadow version 2 must not also take traffic',
    ],
  ])('refuses %j', (text, message) => {
    expect(() => parseModelConfig(text)).toThrow(message)
  })
})

describe('selectVersions', () => {
  it('follows the policy and adds versions that traffic or the shadow name', () => {
    expect(selectVersions([1, 2, 3], {})).toEqual([3])
    expect(selectVersions([3, 1, 2, 2], { version_policy: { latest: 2 } })).toEqual([3, 2])
    expect(selectVersions([1, 2, 3], { version_policy: { all: true } })).toEqual([3, 2, 1])
    expect(selectVersions([1, 2, 3], { version_policy: { specific: [1, 5] } })).toEqual([1])
    expect(
      selectVersions([1, 2, 3], {
        traffic: [
          { version: 1, weight: 50 },
          { version: 3, weight: 50 },
          { version: 2, weight: 0 },
        ],
      }),
    ).toEqual([3, 1])
    expect(selectVersions([1, 2, 3], { shadow: { version: 2 }, version_policy: { specific: [1] } })).toEqual([
      2, 1,
    ])
  })
})
