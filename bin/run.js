#!/usr/bin/env node
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { execute } from '@oclif/core'

// The commands are compiled to dist/ by `npm run build`, which `npm ci` and `npm install` run through
// the prepare script. Without dist/ oclif would only say "command not found".
if (!existsSync(fileURLToPath(new URL('../dist/commands', import.meta.url)))) {
  process.stderr.write(
    'Error: helix is not built (dist/commands is missing).\nHint: run `npm run build` in the helix checkout; `npm ci` does it unless scripts are disabled (--ignore-scripts).\n',
  )
  process.exit(1)
}

await execute({ dir: import.meta.url })
