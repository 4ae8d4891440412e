import { readFile, writeFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { GpuSampler, parseGpuStats, sampleGpuStats } from '../../../src/core/monitoring/gpu-stats.js'
import { tempDir } from '../../helpers/cli.js'
import {
  type FakeNvidiaSmi,
  fakeNvidiaSmi,
  NVIDIA_SMI_FIXTURES,
  noNvidiaSmi,
} from '../gpu/fake-nvidia-smi.js'

describe('GPU live statistics (nvidia-smi --query-gpu)', () => {
  it('parses the recorded output of an H100 under load and warming up', async () => {
    const loaded = parseGpuStats(
      await readFile(join(NVIDIA_SMI_FIXTURES, 'h100-x1-full-query-loaded.csv'), 'utf8'),
    )
    expect(loaded).toEqual([
      {
        index: 0,
        uuid: 'GPU-bb17be85-4f22-5bf6-7750-893db04333ed',
        name: 'NVIDIA H100 80GB HBM3',
        memoryTotalMiB: 81559,
        memoryUsedMiB: 1395,
        memoryFreeMiB: 79685,
        utilizationGpuPercent: 100,
        utilizationMemoryPercent: 9,
        temperatureCelsius: 63,
        powerDrawWatts: 684.69,
        powerLimitWatts: 700,
        driverVersion: '580.159.04',
        pciBusId: '00000000:00:06.0',
        computeCapability: '9.0',
      },
    ])
    const warming = parseGpuStats(
      await readFile(join(NVIDIA_SMI_FIXTURES, 'h100-x1-full-query-warming.csv'), 'utf8'),
    )
    expect(warming[0]).toMatchObject({
      utilizationGpuPercent: 3,
      temperatureCelsius: 41,
      powerDrawWatts: 80.05,
    })
  })

  it('reads [N/A] and [Not Supported] as absent, keeps commas in names, and refuses broken lines', () => {
    const [mig] = parseGpuStats(
      '0, MIG-1, NVIDIA A100, with a comma, 40000, 1000, [N/A], [N/A], [Not Supported], [N/A], [N/A], [N/A], 550.1, 00000000:00:04.0, 8.0\n',
    )
    expect(mig).toMatchObject({
      name: 'NVIDIA A100, with a comma',
      memoryFreeMiB: 39000,
      utilizationGpuPercent: null,
      utilizationMemoryPercent: null,
      temperatureCelsius: null,
      powerDrawWatts: null,
      powerLimitWatts: null,
    })
    expect(() => parseGpuStats('0, GPU-1, short\n')).toThrow(/expected 14 fields, got 3/)
    expect(() => parseGpuStats('0, GPU-1, X, lots, 1, 1, 1, 1, 1, 1, 1, d, p, c\n')).toThrow(
      /bad memory.total 'lots'/,
    )
  })

  describe('sampling', () => {
    let fake: FakeNvidiaSmi | undefined
    afterEach(async () => {
      await fake?.cleanup()
      fake = undefined
    })

    it('says why there are no statistics instead of failing', async () => {
      fake = await noNvidiaSmi()
      expect(await sampleGpuStats({ env: fake.env })).toMatchObject({
        gpus: [],
        reason: 'nvidia-smi not found on PATH (no NVIDIA driver installed?)',
      })
      await fake.cleanup()
      // The stand-in of test/fixtures accepts only the discovery query, so this one fails as a driver would.
      fake = await fakeNvidiaSmi('h100-x1.csv')
      const refused = await sampleGpuStats({ env: fake.env })
      expect(refused.gpus).toEqual([])
      expect(refused.reason).toMatch(/^nvidia-smi failed \(exit 64\): fake nvidia-smi: unexpected arguments/)
      expect(refused.sampledAt).toBeInstanceOf(Date)
    })

    it('gives up on an nvidia-smi that hangs', async () => {
      const dir = await tempDir('helix-hung-smi-')
      await writeFile(join(dir.dir, 'nvidia-smi'), '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 })
      try {
        const hung = await sampleGpuStats({
          env: { PATH: `${dir.dir}${delimiter}${process.env.PATH}` },
          timeoutMs: 200,
        })
        expect(hung).toMatchObject({ gpus: [], reason: 'nvidia-smi did not answer within 200 ms' })
      } finally {
        await dir.cleanup()
      }
    })

    it('shares one sample between callers while it is young', async () => {
      fake = await noNvidiaSmi()
      const sampler = new GpuSampler({ env: fake.env }, 60_000)
      const [first, concurrent] = await Promise.all([sampler.sample(), sampler.sample()])
      expect(concurrent).toBe(first)
      expect(await sampler.sample()).toBe(first)
      const fresh = new GpuSampler({ env: fake.env }, 0)
      const one = await fresh.sample()
      expect(await fresh.sample()).not.toBe(one)
    })
  })
})
