import { copyFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import type { ModelIndexEntry } from '../../../src/core/infer/types.js'
import { GpuMetrics } from '../../../src/core/monitoring/gpu-metrics.js'
import { tempDir } from '../../helpers/cli.js'
import {
  type FakeNvidiaSmi,
  fakeNvidiaSmi,
  NVIDIA_SMI_FIXTURES,
  noNvidiaSmi,
} from '../gpu/fake-nvidia-smi.js'

const GPU0 = 'GPU-bb17be85-4f22-5bf6-7750-893db04333ed'
const GPU1 = 'GPU-3c1e0a2d-9b47-5e1f-a2c8-41d7e9f06b12'

/** The value of one series in the text format, or undefined when it is absent. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('helix_gpu_* metrics from nvidia-smi (recorded H100 output)', () => {
  let fake: FakeNvidiaSmi | undefined
  let cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    await fake?.cleanup()
    fake = undefined
    for (const c of cleanups) await c()
    cleanups = []
  })

  /** A fake whose statistics output is a file the test rewrites between samples. */
  async function liveFake(fixture: string): Promise<{ env: Record<string, string>; output: string }> {
    const dir = await tempDir('helix-gpu-metrics-')
    cleanups.push(dir.cleanup)
    const output = join(dir.dir, 'stats.csv')
    await copyFile(join(NVIDIA_SMI_FIXTURES, fixture), output)
    fake = await fakeNvidiaSmi('h100-x2.csv')
    return { env: { ...fake.env, FAKE_NVIDIA_SMI_STATS_OUTPUT: output }, output }
  }

  it('exposes each GPU, the models placed on it, then drops a GPU that disappears and shows a driver error as helix_gpu_up 0', async () => {
    const { env, output } = await liveFake('h100-x2-full-query.csv')
    const registry = new Registry()
    const placement: ModelIndexEntry[] = [
      { name: 'resnet', version: '1', state: 'READY', device: 'cuda:1' },
      { name: 'bert', version: '2', state: 'READY', device: 'cuda:0' },
      { name: 'cpu-only', version: '1', state: 'READY', device: 'cpu' },
    ]
    const gpus = new GpuMetrics(registry, () => placement, { env, intervalMs: 60_000 })
    await gpus.start()
    try {
      let text = await registry.metrics()
      const l0 = `{gpu="0",uuid="${GPU0}",name="NVIDIA H100 80GB HBM3"}`
      const l1 = `{gpu="1",uuid="${GPU1}",name="NVIDIA H100 80GB HBM3"}`
      expect(value(text, 'helix_gpu_up')).toBe(1)
      expect(value(text, 'helix_gpu_count')).toBe(2)
      expect(value(text, `helix_gpu_utilization_ratio${l0}`)).toBe(1)
      expect(value(text, `helix_gpu_utilization_ratio${l1}`)).toBe(0.03)
      expect(value(text, `helix_gpu_memory_used_bytes${l0}`)).toBe(60395 * 1024 * 1024)
      expect(value(text, `helix_gpu_memory_total_bytes${l1}`)).toBe(81559 * 1024 * 1024)
      expect(value(text, `helix_gpu_temperature_celsius${l0}`)).toBe(63)
      expect(value(text, `helix_gpu_power_watts${l1}`)).toBe(80.05)
      expect(value(text, `helix_gpu_model_info{gpu="1",uuid="${GPU1}",model="resnet",version="1"}`)).toBe(1)
      expect(value(text, `helix_gpu_model_info{gpu="0",uuid="${GPU0}",model="bert",version="2"}`)).toBe(1)
      expect(text).not.toContain('cpu-only')

      // GPU 1 falls off the bus: its series go, the count falls, its model is no longer placed.
      await copyFile(join(NVIDIA_SMI_FIXTURES, 'h100-x1-full-query-loaded.csv'), output)
      await gpus.sample()
      text = await registry.metrics()
      expect(value(text, 'helix_gpu_up')).toBe(1)
      expect(value(text, 'helix_gpu_count')).toBe(1)
      expect(text).not.toContain(GPU1)
      expect(value(text, `helix_gpu_memory_used_bytes${l0}`)).toBe(1395 * 1024 * 1024)

      // The driver stops answering (recorded message, exit 9): helix_gpu_up 0, no per-GPU series, no crash.
      await copyFile(join(NVIDIA_SMI_FIXTURES, 'driver-error.txt'), output)
      env.FAKE_NVIDIA_SMI_EXIT = '9'
      await gpus.sample()
      text = await registry.metrics()
      expect(value(text, 'helix_gpu_up')).toBe(0)
      expect(text).not.toContain(GPU0)
      expect(text).not.toMatch(/^helix_gpu_model_info\{/m)

      // The driver comes back.
      env.FAKE_NVIDIA_SMI_EXIT = '0'
      await copyFile(join(NVIDIA_SMI_FIXTURES, 'h100-x2-full-query.csv'), output)
      await gpus.sample()
      text = await registry.metrics()
      expect(value(text, 'helix_gpu_up')).toBe(1)
      expect(value(text, 'helix_gpu_count')).toBe(2)
    } finally {
      gpus.stop()
    }
  })

  it('runs nvidia-smi once at a time, and off when there is no nvidia-smi or interval 0', async () => {
    const { env } = await liveFake('h100-x1-full-query-loaded.csv')
    const registry = new Registry()
    const gpus = new GpuMetrics(registry, () => [], { env, intervalMs: 60_000 })
    const [a, b] = [gpus.sample(), gpus.sample()]
    expect(a).toBe(b)
    await a
    expect(await registry.metrics()).toContain('helix_gpu_count 1')

    await fake?.cleanup()
    fake = await noNvidiaSmi()
    const none = new Registry()
    const absent = new GpuMetrics(none, () => [], { env: fake.env, intervalMs: 10 })
    await absent.start()
    expect(absent.enabled).toBe(false)
    expect(await none.metrics()).not.toContain('helix_gpu')

    const off = new Registry()
    const disabled = new GpuMetrics(off, () => [], { env, intervalMs: 0 })
    await disabled.start()
    expect(await off.metrics()).not.toContain('helix_gpu')
  })

  it('a hung nvidia-smi times out as helix_gpu_up 0 without blocking the event loop', async () => {
    const { env } = await liveFake('h100-x1-full-query-loaded.csv')
    const registry = new Registry()
    const gpus = new GpuMetrics(registry, () => [], {
      env: { ...env, FAKE_NVIDIA_SMI_HANG: '1' },
      intervalMs: 60_000,
      timeoutMs: 500,
    })
    let ticks = 0
    const timer = setInterval(() => ticks++, 20)
    await gpus.sample()
    clearInterval(timer)
    expect(ticks).toBeGreaterThan(10)
    expect(await registry.metrics()).toContain('helix_gpu_up 0')
  })
})
