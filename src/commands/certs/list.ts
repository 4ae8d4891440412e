import { renderCertificateList } from '../../cli/output/certs.js'
import { HelixCommand } from '../../shared/base-command.js'
import { type ListResult, listCertificates } from '../../state/certs/list.js'

export default class CertsList extends HelixCommand<ListResult> {
  static summary = 'List the CA and leaf certificates with their SANs, expiry and days left.'
  static description =
    'Certificates that expire within tls.warn_days (30) get a warning on stderr (and a `warning` field under --json).'
  static examples = ['<%= config.bin %> certs list', '<%= config.bin %> certs list --dir /srv/helix --json']

  async run(): Promise<ListResult> {
    await this.parse(CertsList)
    const result = await listCertificates(this.home, await this.config_())
    this.log(renderCertificateList(result))
    for (const warning of result.warnings) this.note(`Warning: ${warning}`)
    return result
  }
}
