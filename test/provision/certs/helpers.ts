import { readFile } from 'node:fs/promises'
import { execa } from 'execa'
import { afterEach } from 'vitest'
import { parseConfig } from '../../../src/shared/config.js'
import type { HelixConfig } from '../../../src/shared/config-schema.js'
import { HelixHome } from '../../../src/shared/home.js'
import { tempDir } from '../../helpers/cli.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

/** A fresh helix directory, removed after the test. */
export async function freshHome(): Promise<HelixHome> {
  const { dir, cleanup } = await tempDir('helix-certs-')
  cleanups.push(cleanup)
  return new HelixHome(dir)
}

/** helix.yaml settings with defaults, as loadConfig would give them. */
export function configWith(raw: Record<string, unknown> = {}): HelixConfig {
  return parseConfig(raw)
}

export async function read(home: HelixHome, file: string): Promise<Buffer> {
  return readFile(home.path(file))
}

/** Runs the real openssl; returns stdout+stderr and the exit code. */
export async function openssl(args: string[], input?: string): Promise<{ out: string; exitCode: number }> {
  const result = await execa('openssl', args, { reject: false, all: true, input })
  return { out: String(result.all), exitCode: result.exitCode ?? -1 }
}
