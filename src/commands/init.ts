import { Flags } from '@oclif/core'
import { renderP12Password } from '../cli/output/certs.js'
import { renderFileReport } from '../cli/output/table.js'
import { type InitOptions, type InitResult, initHelixDirectory } from '../provision/init.js'
import { askInitOptions } from '../provision/init-prompts.js'
import { ARTIFACTS, type Artifact } from '../provision/render/render.js'
import { HelixCommand } from '../shared/base-command.js'

export default class Init extends HelixCommand<InitResult> {
  static summary =
    'Create the helix directory: CA and certificates, JWT keys, nginx/Docker/Helm/monitoring files.'
  static description =
    'Idempotent: a second run keeps every existing key, certificate and generated file byte-identical and reports what it kept. --force regenerates everything. On a TTY without --yes it asks for the domain, SANs, key type, admin e-mail and artifacts.'
  static examples = [
    '<%= config.bin %> init --yes',
    '<%= config.bin %> init --yes --domain api.example.com --san 10.0.0.5 --key-type rsa',
    '<%= config.bin %> init --dir /srv/helix --json',
  ]

  static flags = {
    yes: Flags.boolean({
      char: 'y',
      description: 'Accept defaults and flags without asking.',
      default: false,
    }),
    domain: Flags.string({ description: 'Public DNS name of the service (default localhost).' }),
    san: Flags.string({
      description: 'Extra subject alternative name (DNS or IP); repeatable.',
      multiple: true,
    }),
    'key-type': Flags.string({ description: 'Certificate key type.', options: ['ecdsa', 'rsa'] }),
    'jwt-alg': Flags.string({ description: 'JWT signing algorithm.', options: ['EdDSA', 'ES256', 'RS256'] }),
    'admin-email': Flags.string({ description: 'E-mail of the first administrator.' }),
    upstream: Flags.string({
      description: 'Daemon address (host:port) for nginx to balance over; repeatable.',
      multiple: true,
    }),
    only: Flags.string({
      description: 'Render only these artifacts; repeatable.',
      multiple: true,
      options: [...ARTIFACTS],
    }),
    force: Flags.boolean({
      description: 'Regenerate keys, certificates and files even if they exist.',
      default: false,
    }),
  }

  async run(): Promise<InitResult> {
    const { flags } = await this.parse(Init)
    let options: InitOptions = {
      domain: flags.domain,
      sans: flags.san,
      keyType: flags['key-type'] as InitOptions['keyType'],
      jwtAlgorithm: flags['jwt-alg'] as InitOptions['jwtAlgorithm'],
      adminEmail: flags['admin-email'],
      upstreams: flags.upstream,
      artifacts: flags.only as Artifact[] | undefined,
      force: flags.force,
    }
    if (this.interactive(flags.yes)) options = await askInitOptions(options)
    const result = await initHelixDirectory(this.home, options)
    this.log(renderFileReport(`Helix directory ready at ${result.dir}`, result))
    for (const line of renderP12Password(result.clientP12Password)) this.log(line)
    this.log('\nNext: `helix db start` to start PostgreSQL, then `helix serve` (or simply `helix up`).')
    return result
  }
}
