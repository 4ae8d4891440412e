import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { discoverGpus, parseGpuQuery } from '../../../src/core/gpu/nvidia-smi.js'
import { type FakeNvidiaSmi, fakeNvidiaSmi, NVIDIA_SMI_FIXTURES, noNvidiaSmi } from './fake-nvidia-smi.js'

describe('parseGpuQuery', () => {
  it('parses the recorded H100 output', async () => {
    const gpus = parseGpuQuery(await readFile(join(NVIDIA_SMI_FIXTURES, 'h100-x1.csv'), 'utf8'))
    expect(gpus).toEqual([
      {
        index: 0,
        uuid: 'GPU-bb17be85-4f22-5bf6-7750-893db04333ed',
        name: 'NVIDIA H100 80GB HBM3',
        memoryTotalMiB: 81559,
        memoryUsedMiB: 1395,
        memoryFreeMiB: 80164,
        utilizationPercent: 100,
      },
    ])
  })

  it('parses eight GPUs in order', async () => {
    const gpus = parseGpuQuery(await readFile(join(NVIDIA_SMI_FIXTURES, 'h100-x8.csv'), 'utf8'))
    expect(gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(gpus[3]).toMatchObject({ memoryUsedMiB: 79012, memoryFreeMiB: 2547, utilizationPercent: 100 })
    expect(new Set(gpus.map((g) => g.uuid)).size).toBe(8)
  })

  it('reads [N/A] utilisation as null and keeps commas in names', () => {
    const [gpu] = parseGpuQuery('0, GPU-x, NVIDIA A100-SXM4-40GB MIG 1g.5gb, Slice, 4864, 13, [N/A]\n')
    expect(gpu.name).toBe('NVIDIA A100-SXM4-40GB MIG 1g.5gb, Slice')
    expect(gpu.utilizationPercent).toBeNull()
  })

  it('rejects malformed lines with the line in the message', () => {
    expect(() => parseGpuQuery('0, GPU-x, name')).toThrow(/expected 6 fields, got 3 in line '0, GPU-x, name'/)
    expect(() => parseGpuQuery('0, GPU-x, H100, lots, 1, 2')).toThrow(/bad memory.total 'lots'/)
  })
})

describe('discoverGpus with a fake nvidia-smi on PATH', () => {
  let fake: FakeNvidiaSmi | undefined
  afterEach(async () => {
    await fake?.cleanup()
    fake = undefined
  })

  it.each([
    ['h100-x1.csv', 1],
    ['h100-x2.csv', 2],
    ['h100-x8.csv', 8],
  ])('finds the GPUs of %s', async (fixture, count) => {
    fake = await fakeNvidiaSmi(fixture)
    const found = await discoverGpus({ env: fake.env })
    expect(found.reason).toBeUndefined()
    expect(found.gpus).toHaveLength(count)
    expect(found.gpus[0].name).toBe('NVIDIA H100 80GB HBM3')
  })

  it('reports a driver error with what nvidia-smi said', async () => {
    fake = await fakeNvidiaSmi('driver-error.txt', 9)
    const found = await discoverGpus({ env: fake.env })
    expect(found.gpus).toEqual([])
    expect(found.reason).toBe(
      "nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
    )
  })

  it('reports a missing binary', async () => {
    fake = await noNvidiaSmi()
    const found = await discoverGpus({ env: fake.env })
    expect(found).toEqual({ gpus: [], reason: 'nvidia-smi not found on PATH (no NVIDIA driver installed?)' })
  })

  it('reports unparsable and empty output', async () => {
    fake = await fakeNvidiaSmi('README.md')
    expect((await discoverGpus({ env: fake.env })).reason).toMatch(/^nvidia-smi: expected 6 fields/)
    await fake.cleanup()
    fake = await fakeNvidiaSmi('empty.csv')
    expect(await discoverGpus({ env: fake.env })).toEqual({ gpus: [], reason: 'nvidia-smi listed no GPUs' })
  })

  it('gives up on an nvidia-smi that hangs', async () => {
    fake = await fakeNvidiaSmi('h100-x1.csv')
    const started = Date.now()
    const found = await discoverGpus({ env: { ...fake.env, FAKE_NVIDIA_SMI_HANG: '1' }, timeoutMs: 300 })
    expect(found).toEqual({ gpus: [], reason: 'nvidia-smi did not answer within 300 ms' })
    expect(Date.now() - started).toBeLessThan(5000)
  })
})
