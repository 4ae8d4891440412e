import { join } from 'node:path'
import type { HelixConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'
import { renderTemplate } from '../../shared/templates.js'
import { CERT_FILES, certPath } from '../../state/certs/cert-files.js'
import { checkEmail, checkServerName, checkUpstream } from './render-inputs.js'
import type { RenderedFile } from './rendered-file.js'

export interface PrometheusValues {
  targets: string[]
  scheme: 'http' | 'https'
  tls?: { caFile: string; certFile?: string; keyFile?: string }
  alertmanager: string
}

/** Alert thresholds; each is a starting point that operators tune in rules.yml. */
export interface RulesValues {
  /** p99 above this many seconds for 10 minutes (the service aims at P95 < 100 ms). */
  latencyP99Seconds: number
  /** Share of 5xx responses. */
  errorRatio: number
  /** Share of a model's queue in use. */
  queueSaturation: number
  /** tls.warn_days of helix.yaml, the same threshold as `helix certs list`. */
  certWarnDays: number
}

export interface AlertmanagerValues {
  adminEmail: string
  smtpFrom: string
  smtpSmarthost: string
}

export interface DashboardPanel {
  title: string
  description: string
  type: 'timeseries' | 'stat'
  unit: string
  targets: { expr: string; legend: string }[]
}

/** The Grafana dashboard: one panel per question an operator asks first. */
export const DASHBOARD_PANELS: DashboardPanel[] = [
  {
    title: 'Requests per second',
    description: 'All HTTP requests, by status code.',
    type: 'timeseries',
    unit: 'reqps',
    targets: [
      {
        expr: 'sum by (status_code) (rate(helix_request_duration_seconds_count[5m]))',
        legend: '{{status_code}}',
      },
    ],
  },
  {
    title: 'Latency',
    description: 'Request duration percentiles over all instances.',
    type: 'timeseries',
    unit: 's',
    targets: [0.5, 0.95, 0.99].map((q) => ({
      expr: `histogram_quantile(${q}, sum by (le) (rate(helix_request_duration_seconds_bucket[5m])))`,
      legend: `p${Math.round(q * 100)}`,
    })),
  },
  {
    title: '5xx error ratio',
    description: 'Share of requests answered with a server error.',
    type: 'timeseries',
    unit: 'percentunit',
    targets: [
      {
        expr: 'sum(rate(helix_request_duration_seconds_count{status_code=~"5.."}[5m])) / sum(rate(helix_request_duration_seconds_count[5m]))',
        legend: '5xx',
      },
    ],
  },
  {
    title: 'Inference queue depth',
    description: 'Requests waiting per model; at capacity new requests get 429.',
    type: 'timeseries',
    unit: 'short',
    targets: [
      { expr: 'sum by (model) (helix_inference_queue_depth)', legend: '{{model}}' },
      { expr: 'max by (model) (helix_inference_queue_capacity)', legend: '{{model}} capacity' },
    ],
  },
  {
    title: 'Instances up',
    description: 'Daemon instances answering scrapes.',
    type: 'stat',
    unit: 'short',
    targets: [{ expr: 'sum(up{job="helix"})', legend: 'up' }],
  },
  {
    title: 'Certificate days left',
    description: 'Days until each certificate expires (`helix certs rotate` renews).',
    type: 'stat',
    unit: 'd',
    targets: [{ expr: 'min by (cert) (helix_cert_expiry_seconds) / 86400', legend: '{{cert}}' }],
  },
]

export function prometheusValues(home: HelixHome, config: HelixConfig): PrometheusValues {
  const daemonTls = config.server.tls || config.server.mtls
  return {
    targets: config.nginx.upstreams.map(checkUpstream),
    scheme: daemonTls ? 'https' : 'http',
    tls: daemonTls
      ? {
          caFile: certPath(home, CERT_FILES.caCert),
          ...(config.server.mtls
            ? {
                certFile: certPath(home, CERT_FILES.clientCert),
                keyFile: certPath(home, CERT_FILES.clientKey),
              }
            : {}),
        }
      : undefined,
    alertmanager: '127.0.0.1:9093',
  }
}

export function rulesValues(config: HelixConfig): RulesValues {
  return {
    latencyP99Seconds: 0.5,
    errorRatio: 0.05,
    queueSaturation: 0.9,
    certWarnDays: config.tls.warn_days,
  }
}

export function alertmanagerValues(config: HelixConfig): AlertmanagerValues {
  return {
    adminEmail: checkEmail(config.admin_email),
    smtpFrom: `alertmanager@${checkServerName(config.domain)}`,
    smtpSmarthost: 'localhost:25',
  }
}

/** monitoring/: Prometheus config and rules, Alertmanager routing, a Grafana dashboard. */
export function planMonitoring(home: HelixHome, config: HelixConfig): RenderedFile[] {
  const file = (name: string, values: object): RenderedFile => ({
    path: join(home.monitoringDir, name),
    data: renderTemplate(`monitoring/${name}.eta`, values),
  })
  return [
    file('prometheus.yml', prometheusValues(home, config)),
    file('rules.yml', rulesValues(config)),
    file('alertmanager.yml', alertmanagerValues(config)),
    file('grafana-dashboard.json', { panels: DASHBOARD_PANELS }),
  ]
}
