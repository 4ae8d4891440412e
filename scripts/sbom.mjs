#!/usr/bin/env node
// `npm run sbom [-- --out FILE]`: a CycloneDX bill of materials of what a helix release ships, the
// runtime dependencies from package-lock.json and everything they pull in. npm's own `--omit dev`
// filter drops some packages that a runtime dependency and a build tool share, so the whole tree is
// asked for and the components npm marks required (not reached through devDependencies only) kept.
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const bom = JSON.parse(
  execFileSync(npm, ['sbom', '--sbom-format', 'cyclonedx', '--package-lock-only'], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  }),
)
bom.components = bom.components.filter((c) => c.scope === 'required')
const kept = new Set([bom.metadata.component['bom-ref'], ...bom.components.map((c) => c['bom-ref'])])
bom.dependencies = (bom.dependencies ?? [])
  .filter((d) => kept.has(d.ref))
  .map((d) => ({ ...d, dependsOn: (d.dependsOn ?? []).filter((r) => kept.has(r)) }))
const text = `${JSON.stringify(bom, null, 2)}\n`
const out = process.argv.indexOf('--out')
if (out !== -1 && process.argv[out + 1]) writeFileSync(process.argv[out + 1], text)
else process.stdout.write(text)
