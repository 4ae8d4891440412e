import { Flags } from '@oclif/core'
import { renderRenderReport } from '../../cli/output/render.js'
import type { RenderReport } from '../../provision/render/render.js'
import { renderOne } from '../../provision/render/render-one.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class RenderNginx extends HelixCommand<RenderReport> {
  static summary =
    'Re-render nginx/nginx.conf (TLS termination, load balancing, rate limits) from helix.yaml.'
  static description =
    'Flags given here are saved into the nginx section of helix.yaml, so later renders (monitoring scrapes the same upstreams) agree. Run the result with `nginx -p <dir>/nginx -c nginx.conf`.'
  static examples = [
    '<%= config.bin %> render nginx',
    '<%= config.bin %> render nginx --upstream 127.0.0.1:8080 --upstream 127.0.0.1:8081',
    '<%= config.bin %> render nginx --mtls --json',
  ]

  static flags = {
    upstream: Flags.string({
      description: 'Daemon address (host:port) to balance over; repeatable; replaces nginx.upstreams.',
      multiple: true,
    }),
    mtls: Flags.boolean({
      description: 'Require client certificates from the helix CA (--no-mtls turns it off).',
      allowNo: true,
    }),
  }

  async run(): Promise<RenderReport> {
    const { flags } = await this.parse(RenderNginx)
    const report = await renderOne(this.home, 'nginx', { upstreams: flags.upstream, mtls: flags.mtls })
    this.log(renderRenderReport(report, this.home.root))
    return report
  }
}
