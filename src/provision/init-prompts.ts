import * as p from '@clack/prompts'
import { UserError } from '../shared/errors.js'
import { type InitOptions, isValidHostname } from './init.js'
import { ARTIFACTS, type Artifact } from './render/render.js'

function cancelled(value: unknown): never | void {
  if (p.isCancel(value)) {
    p.cancel('Cancelled; nothing was written.')
    throw new UserError('CANCELLED', 'Init was cancelled; nothing was written.', {
      hint: 'Run `helix init --yes` to accept defaults.',
    })
  }
}

/** Interactive questions of `helix init` (TTY only); flags already given are used as defaults. */
export async function askInitOptions(given: InitOptions): Promise<InitOptions> {
  p.intro('helix init')
  const domain = await p.text({
    message: 'Public domain of the service',
    initialValue: given.domain ?? 'localhost',
    validate: (v) => (v && isValidHostname(v) ? undefined : 'Use a DNS name such as api.example.com'),
  })
  cancelled(domain)
  const sans = await p.text({
    message: 'Extra SANs (comma-separated DNS names or IPs; localhost, 127.0.0.1 and ::1 are always added)',
    initialValue: (given.sans ?? []).join(','),
  })
  cancelled(sans)
  const keyType = await p.select({
    message: 'Certificate key type',
    initialValue: given.keyType ?? 'ecdsa',
    options: [
      { value: 'ecdsa', label: 'ECDSA P-256', hint: 'fast, recommended' },
      { value: 'rsa', label: 'RSA (CA 3072, leaves 2048)', hint: 'for old clients' },
    ],
  })
  cancelled(keyType)
  const adminEmail = await p.text({
    message: 'Admin e-mail',
    initialValue: given.adminEmail ?? 'admin@localhost',
  })
  cancelled(adminEmail)
  const artifacts = await p.multiselect({
    message: 'Deployment files to render',
    initialValues: [...(given.artifacts ?? ARTIFACTS)],
    options: ARTIFACTS.map((a) => ({ value: a, label: a })),
    required: false,
  })
  cancelled(artifacts)
  p.outro('Generating…')
  return {
    ...given,
    domain: domain as string,
    sans: String(sans)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    keyType: keyType as InitOptions['keyType'],
    adminEmail: adminEmail as string,
    artifacts: artifacts as Artifact[],
  }
}
