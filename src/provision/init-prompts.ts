import type { Readable, Writable } from 'node:stream'
import * as p from '@clack/prompts'
import { UserError } from '../shared/errors.js'
import { type InitOptions, isValidHostname } from './init.js'
import { ARTIFACTS, type Artifact } from './render/render.js'

function cancelled(value: unknown, io: PromptIo): never | void {
  if (p.isCancel(value)) {
    p.cancel('Cancelled; nothing was written.', io)
    throw new UserError('CANCELLED', 'Init was cancelled; nothing was written.', {
      hint: 'Run `helix init --yes` to accept defaults.',
    })
  }
}

/** Where the prompts read keys and draw (the terminal by default; tests pass streams). */
export interface PromptIo {
  input?: Readable
  output?: Writable
}

/** Interactive questions of `helix init` (TTY only); flags already given are used as defaults. */
export async function askInitOptions(given: InitOptions, io: PromptIo = {}): Promise<InitOptions> {
  p.intro('helix init', io)
  const domain = await p.text({
    ...io,
    message: 'Public domain of the service',
    initialValue: given.domain ?? 'localhost',
    validate: (v) => (v && isValidHostname(v) ? undefined : 'Use a DNS name such as api.example.com'),
  })
  cancelled(domain, io)
  const sans = await p.text({
    ...io,
    message: 'Extra SANs (comma-separated DNS names or IPs; localhost, 127.0.0.1 and ::1 are always added)',
    initialValue: (given.sans ?? []).join(','),
  })
  cancelled(sans, io)
  const keyType = await p.select({
    ...io,
    message: 'Certificate key type',
    initialValue: given.keyType ?? 'ecdsa',
    options: [
      { value: 'ecdsa', label: 'ECDSA P-256', hint: 'fast, recommended' },
      { value: 'rsa', label: 'RSA (CA 3072, leaves 2048)', hint: 'for old clients' },
    ],
  })
  cancelled(keyType, io)
  const adminEmail = await p.text({
    ...io,
    message: 'Admin e-mail',
    initialValue: given.adminEmail ?? 'admin@localhost',
  })
  cancelled(adminEmail, io)
  const artifacts = await p.multiselect({
    ...io,
    message: 'Deployment files to render',
    initialValues: [...(given.artifacts ?? ARTIFACTS)],
    options: ARTIFACTS.map((a) => ({ value: a, label: a })),
    required: false,
  })
  cancelled(artifacts, io)
  p.outro('Generating…', io)
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
