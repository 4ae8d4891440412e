import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execaSync } from 'execa'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { checkPytorch } from '../../src/ops/doctor-pytorch.js'
import { loadConfig } from '../../src/shared/config.js'
import { HelixHome } from '../../src/shared/home.js'
import { tempDir } from '../helpers/cli.js'
import { DEBIAN_PYTHON, hasPythonTorch } from '../helpers/tools.js'

describe.skipIf(!hasPythonTorch())('helix doctor: the PyTorch backend check', () => {
  let home: HelixHome
  let cleanup: () => Promise<void>
  let noTorch: string
  beforeEach(async () => {
    const t = await tempDir()
    home = new HelixHome(t.dir)
    cleanup = t.cleanup
    // Debian's Python without site-packages: a real interpreter that cannot import torch.
    noTorch = join(t.dir, 'python-without-torch')
    await writeFile(noTorch, `#!/bin/sh\nexec ${DEBIAN_PYTHON} -S "$@"\n`)
    await chmod(noTorch, 0o755)
  })
  afterEach(() => cleanup())

  const torchVersion = execaSync(DEBIAN_PYTHON, ['-c', 'import torch; print(torch.__version__)']).stdout

  it('names the Python, the torch version and CUDA availability', async () => {
    const result = await checkPytorch(home, await loadConfig(home, {}, {}))
    expect(result.status).toBe('ok')
    expect(result.message).toMatch(
      new RegExp(
        `^Python 3\\.\\d+\\.\\d+ at /usr/bin/python3, torch ${torchVersion.replace(/[.+]/g, '\\$&')}, CPU only \\(torch\\.cuda\\.is_available\\(\\) is False`,
      ),
    )
  })

  it('a Python without torch is only informational until the repository holds a model.pt', async () => {
    const config = await loadConfig(home, { backends: { pytorch: { python: noTorch } } }, {})
    const idle = await checkPytorch(home, config)
    expect(idle.status).toBe('ok')
    expect(idle.message).toContain("has no torch (No module named 'torch') (only model.pt models need it")
    await mkdir(join(home.modelsDir, 'mlp', '1'), { recursive: true })
    await writeFile(join(home.modelsDir, 'mlp', '1', 'model.pt'), 'x')
    const needed = await checkPytorch(home, config)
    expect(needed.status).toBe('fail')
    expect(needed.message).toContain('1 PyTorch model(s) need it (mlp/1)')
    expect(needed.advice).toContain('apt-get install python3-torch')
    expect(needed.advice).toContain('pip install torch')
  })

  it('a backends.pytorch.python that does not exist fails when a model needs it', async () => {
    await mkdir(join(home.modelsDir, 'mlp', '1'), { recursive: true })
    await writeFile(join(home.modelsDir, 'mlp', '1', 'model.pt'), 'x')
    const missing = join(home.root, 'no-python')
    const config = await loadConfig(home, { backends: { pytorch: { python: missing } } }, {})
    const result = await checkPytorch(home, config)
    expect(result).toMatchObject({ status: 'fail' })
    expect(result.message).toContain(`${missing} cannot be run (backends.pytorch.python)`)
  })
})
