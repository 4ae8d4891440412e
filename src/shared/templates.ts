import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Eta } from 'eta'

/** templates/ at the package root, found from both src/ (tests) and dist/ (the built CLI). */
export function templatesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const candidate = join(dir, 'templates')
    if (existsSync(join(candidate, 'helix.yaml.eta'))) return candidate
    const parent = dirname(dir)
    if (parent === dir) throw new Error('templates/ directory not found next to the helix package')
    dir = parent
  }
}

let engine: Eta | undefined

/**
 * Renders templates/<name> with typed values. Output is not HTML-escaped: these are config files.
 * The values object is exposed to templates as `it`.
 */
export function renderTemplate<T extends object>(name: string, values: T): string {
  engine ??= new Eta({ views: templatesDir(), autoEscape: false, autoTrim: false, cache: true })
  return engine.render(name, values as Record<string, unknown>)
}
