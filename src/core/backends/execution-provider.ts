import type * as ort from 'onnxruntime-node'
import { firstLine } from '../../shared/errors.js'
import type { GpuDiscovery, GpuInfo } from '../gpu/nvidia-smi.js'
import { type GpuReservations, placeModel } from '../gpu/placement.js'
import type { DevicePolicy } from './backend.js'

export const CUDA_INSTALL_HINT =
  'install onnxruntime-node with its CUDA 12 libraries: npm run install:cuda (on a host with an NVIDIA driver), or set device: cpu or auto'

/** One way to open a session: the providers to pass to onnxruntime and what to report. */
export interface ProviderAttempt {
  executionProvider: 'cpu' | 'cuda' | 'webgpu'
  device: string
  providers: ort.InferenceSession.ExecutionProviderConfig[]
  gpu?: GpuInfo
}

/** The plan for a device policy: attempts in order, and why the preferred device was skipped. */
export interface ProviderPlan {
  attempts: ProviderAttempt[]
  /** Set when policy auto already knows it must use the CPU (no GPU found, placement refused). */
  skippedReason?: string
  /** A refusal before trying anything (cuda with an impossible placement). */
  refusal?: string
}

const CPU: ProviderAttempt = { executionProvider: 'cpu', device: 'cpu', providers: ['cpu'] }

function cudaAttempt(gpu: GpuInfo | undefined, pinned: number | undefined): ProviderAttempt {
  const deviceId = gpu?.index ?? pinned ?? 0
  return {
    executionProvider: 'cuda',
    device: `cuda:${deviceId}`,
    providers: [{ name: 'cuda', deviceId }],
    gpu,
  }
}

/**
 * Turns a device policy into the provider attempts the backend makes. `cuda` is tried even when
 * nvidia-smi finds nothing (the runtime has the final word) but never falls back; `auto` tries CUDA
 * only where a GPU was found and places fit, then the CPU.
 */
export function planProviders(
  policy: DevicePolicy,
  discovery: GpuDiscovery,
  placement: { pinned?: number; memoryBudgetMiB?: number },
  reservations?: GpuReservations,
): ProviderPlan {
  if (policy === 'cpu') return { attempts: [CPU] }
  if (policy === 'webgpu')
    return { attempts: [{ executionProvider: 'webgpu', device: 'webgpu', providers: ['webgpu'] }] }
  const placed =
    discovery.gpus.length > 0 ? placeModel(discovery.gpus, placement, reservations?.snapshot) : undefined
  if (policy === 'cuda') {
    if (placed && !placed.ok)
      return { attempts: [], refusal: `cannot place the model on a GPU: ${placed.reason}` }
    return { attempts: [cudaAttempt(placed?.ok ? placed.gpu : undefined, placement.pinned)] }
  }
  if (!placed)
    return { attempts: [CPU], skippedReason: `no GPU found: ${discovery.reason ?? 'nvidia-smi listed none'}` }
  if (!placed.ok)
    return { attempts: [CPU], skippedReason: `cannot place the model on a GPU: ${placed.reason}` }
  return { attempts: [cudaAttempt(placed.gpu, placement.pinned), CPU] }
}

/** The reason a model is unavailable when its provider could not start, with what to do about it. */
export function providerFailure(attempt: ProviderAttempt, error: unknown, discovery: GpuDiscovery): string {
  const said = firstLine(error instanceof Error ? error.message : String(error))
  // Providers are attached before the model is parsed, so an error that does not name the provider
  // is the model's own (corrupt bytes, unknown operator) and is reported as such.
  const providerError = /ExecutionProvider|shared library|cuda|webgpu|adapter|backend/i.test(said)
  if (!providerError || attempt.executionProvider === 'cpu') return `failed to load model.onnx: ${said}`
  if (attempt.executionProvider === 'cuda') {
    const gpus =
      discovery.gpus.length > 0
        ? `${discovery.gpus.length} GPU(s) found`
        : `no GPU found: ${discovery.reason ?? 'nvidia-smi listed none'}`
    return `CUDA is unavailable (${said}; ${gpus}); ${CUDA_INSTALL_HINT}`
  }
  return `WebGPU is unavailable (${said}); it needs a GPU reachable through Vulkan (libvulkan and a driver), or set device: cpu or auto`
}
