// `npm run bench`: runs every bench script in this folder, one after another, each in its own process.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
if (!existsSync(join(here, '..', 'dist', 'commands'))) {
  console.error('bench: dist/ is missing; run `npm run build` first.')
  process.exit(1)
}
const only = process.argv.slice(2)
const scripts = readdirSync(here)
  .filter((f) => /\.(m?js)$/.test(f) && f !== 'run.js')
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
let failed = 0
for (const script of scripts) {
  console.log(`\n=== bench/${script} ===`)
  const result = spawnSync(process.execPath, [join(here, script)], { stdio: 'inherit' })
  if (result.status !== 0) {
    failed++
    console.error(`bench/${script} exited with ${result.status ?? result.signal}`)
  }
}
process.exit(failed ? 1 : 0)
