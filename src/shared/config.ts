import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { Value } from '@sinclair/typebox/value'
import { parse as parseYaml } from 'yaml'
import { type HelixConfig, HelixConfigSchema } from './config-schema.js'
import { UserError } from './errors.js'
import type { HelixHome } from './home.js'
import { schemaMessage } from './schema-message.js'

export type { HelixConfig } from './config-schema.js'

/** Environment variables that override helix.yaml (precedence: helix.yaml < env < flags). */
function envOverrides(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, Record<string, unknown>> = {}
  const set = (section: string, key: string, value: unknown) => {
    out[section] ??= {}
    out[section][key] = value
  }
  if (env.DATABASE_URL) set('database', 'url', env.DATABASE_URL)
  if (env.REDIS_URL) set('redis', 'url', env.REDIS_URL)
  if (env.HELIX_HOST) set('server', 'host', env.HELIX_HOST)
  if (env.HELIX_PORT) set('server', 'port', Number(env.HELIX_PORT))
  if (env.HELIX_GRPC_PORT) set('server', 'grpc', { port: Number(env.HELIX_GRPC_PORT) })
  if (env.HELIX_DEVICE) set('models', 'device', env.HELIX_DEVICE)
  if (env.HELIX_LOG_FORMAT) set('logging', 'format', env.HELIX_LOG_FORMAT)
  if (env.HELIX_TRUST_PROXY !== undefined) {
    const list = env.HELIX_TRUST_PROXY.split(',').map((s) => s.trim())
    set('server', 'trust_proxy', list.filter(Boolean))
  }
  return out
}

function merge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key]
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object'
        ? merge(current as Record<string, unknown>, value as Record<string, unknown>)
        : value
  }
  return out
}

/** Validates a raw settings object and fills defaults; a bad value is a UserError naming its path. */
export function parseConfig(raw: unknown, source = 'helix.yaml'): HelixConfig {
  const input = raw ?? {}
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new UserError('CONFIG_INVALID', `${source} must hold a mapping of settings.`, {
      hint: 'Fix the file, or delete it and run `helix init` to write a fresh commented one.',
    })
  }
  // A section with only commented-out keys parses as null in YAML: treat it as absent.
  const present = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== null))
  const withDefaults = Value.Default(HelixConfigSchema, structuredClone(present))
  const first = Value.Errors(HelixConfigSchema, withDefaults).First()
  if (first) {
    const where = first.path.replace(/^\//, '').replaceAll('/', '.') || '(root)'
    throw new UserError('CONFIG_INVALID', `${source}: ${where}: ${schemaMessage(first)}`, {
      hint: `Fix ${where} in ${source} (see the comments in the file for allowed values).`,
    })
  }
  const config = withDefaults as HelixConfig
  const badProxy = config.server.trust_proxy.find((entry) => !isProxyEntry(entry))
  if (badProxy !== undefined) {
    throw new UserError(
      'CONFIG_INVALID',
      `${source}: server.trust_proxy: '${badProxy}' is not an address or range`,
      {
        hint: 'List the proxies in front of helix as IP addresses or CIDR ranges (10.0.0.0/8), or loopback, linklocal, uniquelocal.',
      },
    )
  }
  return config
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/** An entry Fastify's trustProxy (proxy-addr) understands: an IP, a CIDR range, or a named range. */
function isProxyEntry(entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true
  const [address, bits, extra] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || extra !== undefined) return false
  if (bits === undefined) return true
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)
}

/**
 * Loads helix.yaml from the helix directory (defaults when it does not exist yet), applies env
 * overrides, then the given flag overrides, and validates once.
 */
export async function loadConfig(
  home: HelixHome,
  overrides: Record<string, unknown> = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<HelixConfig> {
  let text: string | undefined
  try {
    text = await readFile(home.configFile, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  let fromFile: unknown = {}
  if (text !== undefined) {
    try {
      fromFile = parseYaml(text) ?? {}
    } catch (err) {
      throw new UserError(
        'CONFIG_INVALID',
        `${home.configFile} is not valid YAML: ${(err as Error).message.split('\n')[0]}`,
        {
          hint: 'Fix the YAML syntax (indentation, quotes) and run the command again.',
        },
      )
    }
  }
  if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) {
    return parseConfig(fromFile, home.configFile)
  }
  const merged = merge(merge(fromFile as Record<string, unknown>, envOverrides(env)), overrides)
  return parseConfig(merged, home.configFile)
}
