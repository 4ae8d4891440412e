// `npm ci` / `npm install` in a helix checkout build dist/ through this prepare script. `npx helix …`
// runs it again (npm exec installs the project itself as a file: dependency), which cost ~10 s on the
// first call: the build is skipped when oclif.manifest.json, written last by `npm run build`, is newer
// than every source file and build setting. Installed as a package (no tsconfig.build.json): nothing to do.
import { execSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

const BUILT = 'oclif.manifest.json'
const INPUTS = ['src', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']

/** The newest modification time under `path` (a file, or a folder walked whole). */
function newest(path) {
  if (!existsSync(path)) return 0
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  let latest = stat.mtimeMs
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)))
  return latest
}

if (existsSync('tsconfig.build.json')) {
  const built = existsSync(BUILT) && existsSync(join('dist', 'commands')) ? statSync(BUILT).mtimeMs : 0
  if (built > 0 && built >= Math.max(...INPUTS.map(newest))) {
    console.log('helix: dist/ is up to date with src/; skipping the build')
  } else {
    execSync('npm run build', { stdio: 'inherit' })
  }
}
