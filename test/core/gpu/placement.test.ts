import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { type GpuInfo, parseGpuQuery } from '../../../src/core/gpu/nvidia-smi.js'
import { GpuReservations, placeModel } from '../../../src/core/gpu/placement.js'
import { NVIDIA_SMI_FIXTURES } from './fake-nvidia-smi.js'

describe('placeModel', () => {
  let eight: GpuInfo[]
  let two: GpuInfo[]
  beforeAll(async () => {
    eight = parseGpuQuery(await readFile(join(NVIDIA_SMI_FIXTURES, 'h100-x8.csv'), 'utf8'))
    two = parseGpuQuery(await readFile(join(NVIDIA_SMI_FIXTURES, 'h100-x2.csv'), 'utf8'))
  })

  it('places on the GPU with the most free memory, lowest index on ties', () => {
    const placed = placeModel(eight, {})
    expect(placed).toMatchObject({ ok: true, gpu: { index: 2 } })
    const tie = eight.map((g) => ({ ...g, memoryFreeMiB: 100 }))
    expect(placeModel(tie, {})).toMatchObject({ ok: true, gpu: { index: 0 } })
  })

  it('honours a pinned GPU even when another has more room', () => {
    expect(placeModel(two, { pinned: 0 })).toMatchObject({ ok: true, gpu: { index: 0 } })
    expect(placeModel(two, {})).toMatchObject({ ok: true, gpu: { index: 1 } })
  })

  it('refuses a pinned GPU that does not exist or lacks the budget', () => {
    expect(placeModel(two, { pinned: 5 })).toEqual({ ok: false, reason: 'gpu 5 does not exist (found 0, 1)' })
    expect(placeModel(two, { pinned: 0, memoryBudgetMiB: 30_000 })).toEqual({
      ok: false,
      reason: 'gpu 0 has 21164 MiB free, below the memory budget of 30000 MiB',
    })
  })

  it('refuses when no GPU has the budget free, and when there is no GPU', () => {
    expect(placeModel(two, { memoryBudgetMiB: 90_000 })).toEqual({
      ok: false,
      reason: 'no GPU has 90000 MiB free (most free: gpu 1 with 80518 MiB)',
    })
    expect(placeModel([], {})).toEqual({ ok: false, reason: 'no GPU found' })
  })

  it('counts earlier reservations so budgets spread over GPUs', () => {
    const reservations = new GpuReservations()
    const first = placeModel(two, { memoryBudgetMiB: 70_000 }, reservations.snapshot)
    expect(first).toMatchObject({ ok: true, gpu: { index: 1 } })
    const release = reservations.reserve(1, 70_000)
    expect(placeModel(two, { memoryBudgetMiB: 20_000 }, reservations.snapshot)).toMatchObject({
      ok: true,
      gpu: { index: 0 },
    })
    expect(placeModel(two, { memoryBudgetMiB: 70_000 }, reservations.snapshot)).toMatchObject({ ok: false })
    release()
    release()
    expect(reservations.snapshot.get(1)).toBe(0)
    expect(placeModel(two, { memoryBudgetMiB: 70_000 }, reservations.snapshot)).toMatchObject({
      ok: true,
      gpu: { index: 1 },
    })
  })
})
