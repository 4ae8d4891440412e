import { join } from 'node:path'
import type { HelixConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'
import { renderTemplate } from '../../shared/templates.js'
import { daemonGrpcPort } from './grpc-upstreams.js'
import { checkServerName } from './render-inputs.js'
import type { RenderedFile } from './rendered-file.js'

/** What the chart's Chart.yaml and values.yaml take from helix.yaml. */
export interface HelmValues {
  version: string
  domain: string
  port: number
  maxBody: string
  gpu: boolean
  device: string
  jwtIssuer: string
  jwtAudience: string
  accessTtl: number
  bodyLimit: number
  /** The gRPC face: on or off (server.grpc.enabled), its port and message limit. */
  grpc: { enabled: boolean; port: number; maxMessageBytes: number }
}

/** The chart's files, relative to helm/helix/; each comes from templates/helm/helix/<file>.eta. */
export const CHART_FILES = [
  'Chart.yaml',
  'values.yaml',
  '.helmignore',
  'templates/_helpers.tpl',
  'templates/configmap.yaml',
  'templates/deployment.yaml',
  'templates/service.yaml',
  'templates/ingress.yaml',
  'templates/ingress-grpc.yaml',
  'templates/hpa.yaml',
  'templates/pdb.yaml',
  'templates/networkpolicy.yaml',
] as const

export function helmValues(config: HelixConfig, version: string): HelmValues {
  return {
    version,
    domain: checkServerName(config.domain),
    port: config.server.port,
    maxBody: config.nginx.max_body,
    gpu: config.models.device === 'cuda',
    device: config.models.device,
    jwtIssuer: config.jwt.issuer,
    jwtAudience: config.jwt.audience,
    accessTtl: config.jwt.access_ttl_s,
    bodyLimit: config.server.body_limit,
    grpc: {
      enabled: config.server.grpc.enabled,
      // With gRPC off the port is still a valid default for whoever turns it on in values.yaml.
      port: daemonGrpcPort(config) ?? config.server.grpc.port ?? config.server.port + 1,
      maxMessageBytes: config.server.grpc.max_message_bytes,
    },
  }
}

/** helm/helix/: the chart. Its Go templates pass through eta untouched; values come from helix.yaml. */
export function planHelm(home: HelixHome, config: HelixConfig, version: string): RenderedFile[] {
  const values = helmValues(config, version)
  return CHART_FILES.map((file) => ({
    path: join(home.helmDir, file),
    data: renderTemplate(`helm/helix/${file}.eta`, values),
  }))
}
