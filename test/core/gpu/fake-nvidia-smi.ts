import { mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { ROOT } from '../../helpers/cli.js'

export const NVIDIA_SMI_FIXTURES = join(ROOT, 'test', 'fixtures', 'nvidia-smi')

export interface FakeNvidiaSmi {
  /** Environment that puts the fake first on PATH (pass to discoverGpus or a spawned helix). */
  env: Record<string, string>
  cleanup: () => Promise<void>
}

/**
 * Puts the recorded-output stand-in on PATH as `nvidia-smi`: it prints the fixture file and exits
 * with the given status. GPUs are the one thing tests may fake (there is no GPU on CI).
 */
export async function fakeNvidiaSmi(fixture: string, exitCode = 0): Promise<FakeNvidiaSmi> {
  const dir = await mkdtemp(join(tmpdir(), 'helix-fake-smi-'))
  await symlink(join(NVIDIA_SMI_FIXTURES, 'fake-nvidia-smi'), join(dir, 'nvidia-smi'))
  return {
    env: {
      PATH: `${dir}${delimiter}${process.env.PATH ?? ''}`,
      FAKE_NVIDIA_SMI_OUTPUT: join(NVIDIA_SMI_FIXTURES, fixture),
      FAKE_NVIDIA_SMI_EXIT: String(exitCode),
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}

/** An environment in which no nvidia-smi can be found, even on a machine that has one. */
export async function noNvidiaSmi(): Promise<FakeNvidiaSmi> {
  const dir = await mkdtemp(join(tmpdir(), 'helix-no-smi-'))
  return { env: { PATH: dir }, cleanup: () => rm(dir, { recursive: true, force: true }) }
}
