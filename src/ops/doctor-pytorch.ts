import { readdir } from 'node:fs/promises'
import { execa } from 'execa'
import { DEFAULT_PYTHON } from '../core/backends/pytorch/pytorch-backend.js'
import { repositoryDir } from '../core/infer/repository-location.js'
import type { HelixConfig } from '../shared/config.js'
import type { HelixHome } from '../shared/home.js'
import { type CheckResult, fail, ok, warn } from './check.js'

export const TORCH_INSTALL_HINT =
  'Install torch for that Python: `apt-get install python3-torch` (Debian, CPU) or `pip install torch` (CUDA builds), or set backends.pytorch.python in helix.yaml to a Python that has it.'

const PROBE = `
import json, sys
try:
    import torch
except ImportError as exc:
    print(json.dumps({"python": sys.version.split()[0], "error": str(exc)}))
    sys.exit(0)
cuda = torch.cuda.is_available()
print(json.dumps({
    "python": sys.version.split()[0],
    "torch": torch.__version__,
    "cuda": cuda,
    "cuda_build": torch.version.cuda,
    "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
}))
`

/** The model.pt files of the repository, as name/version (what needs torch to serve). */
export async function torchScriptModels(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries
    .filter((e) => e.isFile() && e.name === 'model.pt')
    .map((e) => e.parentPath.slice(dir.length + 1))
    .sort()
}

/**
 * The PyTorch backend's Python: its version, torch's version and whether torch sees CUDA. Only a
 * repository with model.pt files needs it: without one, a Python without torch is an ok line.
 */
export async function checkPytorch(home: HelixHome, config: HelixConfig): Promise<CheckResult> {
  const python = config.backends?.pytorch?.python ?? DEFAULT_PYTHON
  const models = await torchScriptModels(repositoryDir(home, config))
  const needed = models.length > 0
  const missing = (message: string): CheckResult =>
    needed
      ? fail(
          'pytorch',
          `${message}; ${models.length} PyTorch model(s) need it (${models.join(', ')})`,
          TORCH_INSTALL_HINT,
        )
      : ok('pytorch', `${message} (only model.pt models need it; ${TORCH_INSTALL_HINT})`)
  const run = await execa(python, ['-c', PROBE], { reject: false, timeout: 60_000 })
  if (run.failed && run.exitCode === undefined)
    return missing(`${python} cannot be run (backends.pytorch.python)`)
  let probe: {
    python: string
    torch?: string
    error?: string
    cuda?: boolean
    cuda_build?: string | null
    devices?: string[]
  }
  try {
    probe = JSON.parse(run.stdout)
  } catch {
    return missing(`${python} did not run the torch probe: ${run.stderr.trim().split('\n').at(-1) ?? ''}`)
  }
  if (probe.error) return missing(`Python ${probe.python} at ${python} has no torch (${probe.error})`)
  const base = `Python ${probe.python} at ${python}, torch ${probe.torch}`
  if (probe.cuda) return ok('pytorch', `${base}, CUDA ${probe.cuda_build}: ${probe.devices?.join(', ')}`)
  const cpu = `${base}, CPU only (torch.cuda.is_available() is False${probe.cuda_build ? '' : '; a CPU build'})`
  return needed && config.models?.device === 'cuda'
    ? warn(
        'pytorch',
        cpu,
        'models.device is cuda: install a torch with CUDA (pip install torch) for GPU models.',
      )
    : ok('pytorch', cpu)
}
