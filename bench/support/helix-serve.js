// A real `helix serve` for the bench scripts: a fresh helix directory holding the given models,
// served on an ephemeral loopback port.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HELIX_BIN, helixBench, runNode, startListening } from './processes.js'

export async function serveModels(models) {
  const dir = await mkdtemp(join(tmpdir(), 'helix-bench-'))
  for (const [name, file] of Object.entries(models))
    await runNode([HELIX_BIN, 'models', 'add', name, file, '--dir', dir])
  const daemon = await startListening(HELIX_BIN, [
    'serve',
    '--dir',
    dir,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--log-level',
    'warn',
  ])
  return {
    url: daemon.url,
    dir,
    stop: async () => {
      await daemon.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/**
 * A freshly started daemon is slow for its first seconds (JIT, onnxruntime memory arenas, first
 * batches): load it for a few seconds, unmeasured, before the runs that count.
 */
export async function warmUp(url, model, seconds = 3) {
  await helixBench(['--url', url, '--model', model, '-c', '32', '-d', `${seconds}s`, '--warmup', '0s'])
}
