// Writes one script's latest results into its own marked section of bench/README.md, leaving the
// rest of the file (other scripts' sections, prose) untouched.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './processes.js'

const README = join(ROOT, 'bench', 'README.md')

export function writeReadmeSection(id, markdown) {
  const begin = `<!-- bench:${id}:begin -->`
  const end = `<!-- bench:${id}:end -->`
  const block = `${begin}\n${markdown.trim()}\n${end}`
  const text = existsSync(README) ? readFileSync(README, 'utf8') : '# Benchmarks\n'
  const at = text.indexOf(begin)
  const after = text.indexOf(end)
  const next =
    at >= 0 && after > at
      ? text.slice(0, at) + block + text.slice(after + end.length)
      : `${text.trimEnd()}\n\n${block}\n`
  writeFileSync(README, next)
}

export function machine() {
  return `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, Node ${process.version}, ${process.platform}/${process.arch}`
}
