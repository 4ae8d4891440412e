import { readFileSync } from 'node:fs'

/** The helix version (package.json), as GET /v2 and the daemon record report it. */
export const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version
