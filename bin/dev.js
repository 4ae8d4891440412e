#!/usr/bin/env -S node --loader ts-node/esm --no-warnings=ExperimentalWarning
// Development entry point: runs the TypeScript sources directly (needs `npm i -D ts-node`).
// Everyday development uses `npm run build` and bin/run.js; this file exists for oclif's dev mode.
import { execute } from '@oclif/core'

await execute({ development: true, dir: import.meta.url })
