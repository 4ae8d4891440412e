import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { stringify } from 'yaml'
import { DEBIAN_PYTHON } from './tools.js'

/**
 * Real TorchScript models for the PyTorch backend's tests, scripted and saved by Debian's torch in
 * the test itself (torch.jit.script + save), with reference outputs computed by torch directly.
 */
const SCRIPT = `
import sys, torch
from typing import Dict, Tuple
out = sys.argv[1]
torch.manual_seed(0)

class Mix(torch.nn.Module):
    """Two inputs with a dynamic batch dimension, two outputs as a tuple."""
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return torch.tanh(self.lin(a)) * 2.0 + b.sum(dim=1, keepdim=True), a * b

class Named(torch.nn.Module):
    """The same maths as a dict of named outputs."""
    def __init__(self, mix: Mix):
        super().__init__()
        self.mix = mix
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Dict[str, torch.Tensor]:
        y, z = self.mix(a, b)
        return {"z": z, "y": y}

class Slow(torch.nn.Module):
    """Loops x[0, 0] times: a long value keeps the worker busy (for crash and hang tests)."""
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for _ in range(int(x[0, 0])):
            y = torch.sin(y)
        return y

class Raises(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("raises: forward called")  # TorchScript prints to stdout: must not break the frames
        if bool(x.sum() < 0):
            raise RuntimeError("negative input refused")
        return x + 1.0

mix = Mix()
torch.jit.save(torch.jit.script(mix), out + "/mix.pt")
torch.jit.save(torch.jit.script(Named(mix)), out + "/named.pt")
torch.jit.save(torch.jit.script(Slow()), out + "/slow.pt")
torch.jit.save(torch.jit.script(Raises()), out + "/raises.pt")
`

/** What config.yaml declares for mix.pt and named.pt: two FP32[4] inputs, outputs y FP32[3] and z FP32[4]. */
export const MIX_IO = {
  inputs: [
    { name: 'a', datatype: 'FP32', dims: [4] },
    { name: 'b', datatype: 'FP32', dims: [4] },
  ],
  outputs: [
    { name: 'y', datatype: 'FP32', dims: [3] },
    { name: 'z', datatype: 'FP32', dims: [4] },
  ],
}

export interface TorchModels {
  dir: string
  /** model.pt files by name: mix (tuple), named (dict), slow, raises. */
  files: Record<'mix' | 'named' | 'slow' | 'raises', string>
}

/** Scripts and saves the test models under dir. */
export async function buildTorchModels(dir: string): Promise<TorchModels> {
  // torch.jit.script reads the classes' source, so the script must be a file.
  const script = join(dir, 'build_models.py')
  await writeFile(script, SCRIPT)
  await execa(DEBIAN_PYTHON, [script, dir])
  const files = {
    mix: join(dir, 'mix.pt'),
    named: join(dir, 'named.pt'),
    slow: join(dir, 'slow.pt'),
    raises: join(dir, 'raises.pt'),
  }
  return { dir, files }
}

/** What torch itself answers for the given inputs of a saved module (outputs flattened, tuple order). */
export async function torchReference(
  file: string,
  inputs: { data: number[]; shape: number[] }[],
): Promise<number[][]> {
  const code = `
import json, sys, torch
spec = json.loads(sys.stdin.read())
m = torch.jit.load(spec["file"])
args = [torch.tensor(i["data"], dtype=torch.float32).reshape(i["shape"]) for i in spec["inputs"]]
with torch.no_grad():
    out = m(*args)
if isinstance(out, dict):
    out = [out[k] for k in sorted(out)]
elif isinstance(out, torch.Tensor):
    out = [out]
print(json.dumps([o.flatten().tolist() for o in out]))
`
  const { stdout } = await execa(DEBIAN_PYTHON, ['-c', code], { input: JSON.stringify({ file, inputs }) })
  return JSON.parse(stdout) as number[][]
}

/** Puts a model.pt into repository/<name>/<version>/ with its config.yaml. */
export async function addTorchModel(
  repositoryDir: string,
  name: string,
  file: string,
  config: Record<string, unknown> | string,
  version = 1,
): Promise<void> {
  await mkdir(join(repositoryDir, name, String(version)), { recursive: true })
  await copyFile(file, join(repositoryDir, name, String(version), 'model.pt'))
  await writeFile(
    join(repositoryDir, name, 'config.yaml'),
    typeof config === 'string' ? config : stringify(config),
  )
}

/** The PIDs of the running PyTorch workers whose argv names this model file. */
export async function torchWorkerPids(modelFile: string): Promise<number[]> {
  const pids: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.includes('helix_torch_worker.py') && cmdline.includes(modelFile)) pids.push(Number(entry))
  }
  return pids
}
