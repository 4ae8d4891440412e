import { isIP } from 'node:net'
import { relative } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { commitFiles } from '../shared/atomic-write.js'
import { type HelixConfig, loadConfig, parseConfig } from '../shared/config.js'
import type { JwtAlgorithm, KeyType } from '../shared/config-schema.js'
import { UserError } from '../shared/errors.js'
import { type FileReport, mergeReports } from '../shared/file-report.js'
import { exists, type HelixHome } from '../shared/home.js'
import { renderTemplate } from '../shared/templates.js'
import { ensureCertificates } from './certs/certificates.js'
import { ensureJwtKeys } from './jwt/jwt-keys.js'
import { ARTIFACTS, type Artifact, checkArtifacts, renderArtifacts } from './render/render.js'

export interface InitOptions {
  domain?: string
  sans?: string[]
  keyType?: KeyType
  jwtAlgorithm?: JwtAlgorithm
  adminEmail?: string
  upstreams?: string[]
  artifacts?: readonly Artifact[]
  force?: boolean
}

export interface InitResult extends FileReport {
  dir: string
  domain: string
  artifacts: Artifact[]
  /** Generated password of a newly created certs/client.p12: shown once, never stored. */
  clientP12Password?: string
}

/** Directories every helix directory has, even before anything is put in them. */
const LAYOUT_DIRS = ['certs', 'keys', 'models', 'data'] as const

const DNS_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/

export function isValidHostname(name: string): boolean {
  const bare = name.startsWith('*.') ? name.slice(2) : name
  return bare.length > 0 && bare.length <= 253 && bare.split('.').every((label) => DNS_LABEL.test(label))
}

/** Validates a domain or SAN; a wrong one is a UserError that says what a valid one looks like. */
export function validateName(name: string, flag: '--domain' | '--san'): string {
  const trimmed = name.trim()
  if (isIP(trimmed) || (flag === '--san' && isValidHostname(trimmed))) return trimmed
  if (flag === '--domain' && isValidHostname(trimmed) && !trimmed.startsWith('*.'))
    return trimmed.toLowerCase()
  throw new UserError(
    'INVALID_NAME',
    `${flag} '${name}' is not a valid DNS name${flag === '--san' ? ' or IP address' : ''}.`,
    {
      hint: 'Use letters, digits, hyphens and dots only, e.g. api.example.com (a SAN may also be an IP such as 10.0.0.5).',
    },
  )
}

const EMAIL = /^[^\s@]+@[^\s@]+$/

/** Settings for a new helix.yaml from the options, validated before anything is written. */
function initialSettings(options: InitOptions) {
  const domain = validateName(options.domain ?? 'localhost', '--domain')
  const sans = [...new Set((options.sans ?? []).map((s) => validateName(s, '--san')))]
  const adminEmail = options.adminEmail ?? 'admin@localhost'
  if (!EMAIL.test(adminEmail)) {
    throw new UserError('INVALID_EMAIL', `Admin e-mail '${adminEmail}' is not an e-mail address.`, {
      hint: 'Give an address such as ops@example.com.',
    })
  }
  return {
    domain,
    sans,
    adminEmail,
    keyType: options.keyType ?? 'ecdsa',
    jwtAlgorithm: options.jwtAlgorithm ?? 'EdDSA',
    upstreams: options.upstreams?.length ? options.upstreams : ['127.0.0.1:8080'],
  }
}

/**
 * `helix init`: creates (or completes) the helix directory. Idempotent: existing keys, certificates
 * and rendered files are kept byte-identical and reported as kept unless `force` is set. All input is
 * validated before the first byte is written.
 */
export async function initHelixDirectory(home: HelixHome, options: InitOptions = {}): Promise<InitResult> {
  const settings = initialSettings(options)
  const artifacts = [...(options.artifacts ?? ARTIFACTS)]
  await home.ensureWritable()

  const configExisted = await exists(home.configFile)
  const writeConfig = !configExisted || options.force
  let config: HelixConfig
  if (writeConfig) {
    const text = renderTemplate('helix.yaml.eta', settings)
    config = parseConfig(parseYaml(text), home.configFile)
  } else {
    config = await loadConfig(home)
  }
  // Flags given on this run win over the file for what this run generates.
  if (options.domain) config.domain = settings.domain
  if (options.sans?.length) config.sans = settings.sans
  if (options.keyType) config.tls.key_type = settings.keyType
  if (options.jwtAlgorithm) config.jwt.algorithm = settings.jwtAlgorithm
  config.tls.key_type ??= 'ecdsa'
  config.jwt.algorithm ??= 'EdDSA'

  // Values that end up in generated files (upstreams, allowlists) are checked before anything is written.
  await checkArtifacts(home, config, artifacts)
  for (const dir of LAYOUT_DIRS) await home.ensureDir(dir)
  const configReport: FileReport = { created: [], kept: [] }
  const configName = relative(home.root, home.configFile)
  if (writeConfig) {
    await commitFiles([
      { path: home.configFile, data: renderTemplate('helix.yaml.eta', settings), mode: 0o644 },
    ])
    configReport.created.push(configName)
  } else {
    configReport.kept.push(configName)
  }

  const force = Boolean(options.force)
  const certs = await ensureCertificates(home, config, { force })
  const keys = await ensureJwtKeys(home, config, { force })
  const rendered = await renderArtifacts(home, config, artifacts, { force })
  const secret = certs.clientP12Password ? { clientP12Password: certs.clientP12Password } : {}
  return {
    dir: home.root,
    domain: config.domain,
    artifacts,
    ...mergeReports(configReport, certs, keys, rendered),
    ...secret,
  }
}
