import { afterEach, describe, expect, it } from 'vitest'
import { type FakeNvidiaSmi, fakeNvidiaSmi, noNvidiaSmi } from '../core/gpu/fake-nvidia-smi.js'
import { runHelix, runHelixJson } from '../helpers/cli.js'

describe('helix gpus (e2e, fake nvidia-smi on PATH)', () => {
  let fake: FakeNvidiaSmi | undefined
  afterEach(async () => {
    await fake?.cleanup()
    fake = undefined
  })

  it('lists eight GPUs as a table', async () => {
    fake = await fakeNvidiaSmi('h100-x8.csv')
    const result = await runHelix(['gpus'], { env: fake.env })
    expect(result.exitCode).toBe(0)
    const lines = result.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^INDEX\s+NAME\s+MEMORY USED\s+MEMORY FREE\s+UTIL\s+UUID$/)
    expect(lines).toHaveLength(9)
    expect(lines[1]).toMatch(
      /^0\s+NVIDIA H100 80GB HBM3\s+1395 \/ 81559 MiB\s+80164 MiB\s+100%\s+GPU-bb17be85-4f22-5bf6-7750-893db04333ed$/,
    )
  })

  it('prints the discovery as JSON', async () => {
    fake = await fakeNvidiaSmi('h100-x2.csv')
    const result = await runHelixJson<{ gpus: { index: number; memoryFreeMiB: number }[] }>(['gpus'], {
      env: fake.env,
    })
    expect(result.gpus.map((g) => [g.index, g.memoryFreeMiB])).toEqual([
      [0, 21164],
      [1, 80518],
    ])
  })

  it('says why there is no GPU, and exits 0', async () => {
    fake = await fakeNvidiaSmi('driver-error.txt', 9)
    const driver = await runHelix(['gpus'], { env: fake.env })
    expect(driver.exitCode).toBe(0)
    expect(driver.stdout).toContain(
      "No NVIDIA GPU found: nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
    )
    await fake.cleanup()
    fake = await noNvidiaSmi()
    const none = await runHelixJson(['gpus'], {
      env: { ...fake.env, PATH: `${fake.env.PATH}:${process.execPath.replace(/\/node$/, '')}` },
    })
    expect(none).toEqual({ gpus: [], reason: 'nvidia-smi not found on PATH (no NVIDIA driver installed?)' })
  })
})
