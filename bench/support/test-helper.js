// Loads a self-contained TypeScript helper from test/helpers (the generated models the tests use) in a
// plain node bench script: TypeScript's transpileModule turns it into an ES module kept under
// node_modules/.cache, so its own imports resolve from the project's node_modules.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import ts from 'typescript'
import { ROOT } from './processes.js'

export async function importTestHelper(name) {
  const source = await readFile(join(ROOT, 'test', 'helpers', `${name}.ts`), 'utf8')
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  })
  const dir = join(ROOT, 'node_modules', '.cache', 'helix-bench')
  await mkdir(dir, { recursive: true })
  const file = join(dir, `${basename(name)}.mjs`)
  await writeFile(file, outputText)
  return import(pathToFileURL(file).href)
}
