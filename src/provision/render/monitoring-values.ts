import { existsSync } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'
import type { HelixConfig } from '../../shared/config.js'
import { UserError } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'
import { renderTemplate } from '../../shared/templates.js'
import { CERT_FILES, certPath } from '../../state/certs/cert-files.js'
import { type DashboardPanel, DETAIL_PANELS } from './dashboard-panels.js'
import { checkEmail, checkServerName, checkUpstream } from './render-inputs.js'
import type { RenderedFile } from './rendered-file.js'

export interface PrometheusValues {
  targets: string[]
  scheme: 'http' | 'https'
  tls?: { caFile: string; certFile?: string; keyFile?: string }
  /** With auth on and no metrics port: monitoring/metrics.key (absolute: helix monitor up runs a copy elsewhere), a key with the metrics scope. */
  credentialsFile?: string
  /** Auth is on, no metrics port, and that file is not there yet: prometheus.yml says how to make it. */
  credentialsMissing?: boolean
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
  /** gRPC status codes that count as server errors (a PromQL regex alternation). */
  grpcServerErrorCodes: string
  /** How long helix_model_ready stays 0 before HelixModelNotReady fires (a load takes seconds). */
  modelNotReadyFor: string
  /** Share of a GPU's memory in use. */
  gpuMemoryRatio: number
  /** Requests per second refused by one rate limit, for 5 minutes. */
  rateLimitedPerSecond: number
  /** Share of an API key's quota used in its period. */
  quotaUsedRatio: number
}

/** One way of getting a secret into alertmanager.yml: inline, or the path of a file Alertmanager reads. */
export type AlertSecret = { value: string; file?: undefined } | { file: string; value?: undefined }

export interface AlertmanagerValues {
  /** Where alert mail goes; empty when only Slack (and PagerDuty) are configured. */
  emails: string[]
  smtpFrom: string
  smtpSmarthost: string
  smtpRequireTls: boolean
  smtpAuth?: { username: string; passwordFile: string }
  slack?: { url: AlertSecret; channel?: string }
  pagerduty?: { routingKey: AlertSecret; url?: string }
}

export type { DashboardPanel }

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
    // Without a server error in the window the numerator has no series (and a healthy daemon has none).
    mayBeEmpty: 'no server error (5xx) answered yet',
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
    mayBeEmpty: 'no helix certificates made yet',
    targets: [{ expr: 'min by (cert) (helix_cert_expiry_seconds) / 86400', legend: '{{cert}}' }],
  },
  ...DETAIL_PANELS,
]

export function prometheusValues(home: HelixHome, config: HelixConfig): PrometheusValues {
  // server.metrics_port: the daemon's loopback /metrics without credentials (a one-box install).
  const metricsPort = config.server.metrics_port
  if (metricsPort !== undefined)
    return { targets: [`127.0.0.1:${metricsPort}`], scheme: 'http', alertmanager: '127.0.0.1:9093' }
  const daemonTls = config.server.tls || config.server.mtls
  return {
    ...(config.auth.enabled
      ? existsSync(join(home.monitoringDir, 'metrics.key'))
        ? { credentialsFile: join(home.monitoringDir, 'metrics.key') }
        : { credentialsMissing: true }
      : {}),
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
    grpcServerErrorCodes: 'UNKNOWN|INTERNAL|UNAVAILABLE|DATA_LOSS|DEADLINE_EXCEEDED',
    modelNotReadyFor: '1m',
    gpuMemoryRatio: 0.9,
    rateLimitedPerSecond: 1,
    quotaUsedRatio: 0.9,
  }
}

const invalid = (message: string, hint: string) => new UserError('ALERTS_CONFIG_INVALID', message, { hint })

/** An http(s) URL without characters that would break the YAML it goes into. */
function checkUrl(key: string, url: string): string {
  let parsed: URL | undefined
  try {
    parsed = new URL(url)
  } catch {}
  if (!parsed || !/^https?:$/.test(parsed.protocol) || /[\s"'\\]/.test(url)) {
    throw invalid(
      `alerts.${key} in helix.yaml is not an http(s) URL.`,
      `Give a URL such as https://hooks.slack.com/services/… (or put it in a file and set alerts.${key}_file).`,
    )
  }
  return url
}

/** A secret file: its absolute path (relative ones are under the helix directory); it must exist. */
function checkSecretFile(home: HelixHome, key: string, path: string): string {
  const absolute = isAbsolute(path) ? path : resolve(home.root, path)
  if (/[\n"\\]/.test(absolute)) {
    throw invalid(`alerts.${key} in helix.yaml is not a usable path.`, 'Use a plain file path.')
  }
  if (!existsSync(absolute)) {
    throw invalid(
      `alerts.${key} in helix.yaml names ${absolute}, which does not exist.`,
      'Write the secret into that file (chmod 600, readable by Alertmanager) or fix the path.',
    )
  }
  return absolute
}

function secret(
  home: HelixHome,
  key: string,
  value: string | undefined,
  file: string | undefined,
  check: (value: string) => string,
): AlertSecret | undefined {
  if (value !== undefined && file !== undefined) {
    throw invalid(
      `alerts.${key} and alerts.${key}_file are both set in helix.yaml.`,
      `Keep one: alerts.${key}_file keeps the secret out of alertmanager.yml.`,
    )
  }
  if (file !== undefined) return { file: checkSecretFile(home, `${key}_file`, file) }
  if (value !== undefined) return { value: check(value) }
  return undefined
}

/**
 * alerts.* of helix.yaml, checked: e-mail (admin_email when nothing else is set), Slack and PagerDuty.
 * A secret given as a file stays a file path in alertmanager.yml.
 */
export function alertmanagerValues(home: HelixHome, config: HelixConfig): AlertmanagerValues {
  const alerts = config.alerts
  const slackUrl = secret(
    home,
    'slack_webhook_url',
    alerts.slack_webhook_url,
    alerts.slack_webhook_url_file,
    (u) => checkUrl('slack_webhook_url', u),
  )
  const routingKey = secret(
    home,
    'pagerduty_routing_key',
    alerts.pagerduty_routing_key,
    alerts.pagerduty_routing_key_file,
    (key) => {
      if (/^[A-Za-z0-9_-]{1,128}$/.test(key)) return key
      throw invalid(
        'alerts.pagerduty_routing_key in helix.yaml is not a PagerDuty routing key.',
        'Copy the 32-character integration key of an Events API v2 integration.',
      )
    },
  )
  if (alerts.slack_channel !== undefined && !/^[#@]?[A-Za-z0-9._-]{1,80}$/.test(alerts.slack_channel)) {
    throw invalid(
      `alerts.slack_channel '${alerts.slack_channel}' in helix.yaml is not a channel name.`,
      'Use a name such as #alerts.',
    )
  }
  const emails = alerts.email.length > 0 ? alerts.email : slackUrl ? [] : [config.admin_email]
  const { smtp } = alerts
  if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(smtp.smarthost)) {
    throw invalid(
      `alerts.smtp.smarthost '${smtp.smarthost}' in helix.yaml is not host:port.`,
      'Use e.g. mail.example.com:587.',
    )
  }
  if ((smtp.auth_username === undefined) !== (smtp.auth_password_file === undefined)) {
    throw invalid(
      'alerts.smtp.auth_username and alerts.smtp.auth_password_file go together in helix.yaml.',
      'Set both for SMTP AUTH, or neither.',
    )
  }
  if (smtp.auth_username !== undefined && /[\s"'\\]/.test(smtp.auth_username)) {
    throw invalid(
      'alerts.smtp.auth_username in helix.yaml holds spaces or quotes.',
      'Use the plain user name.',
    )
  }
  return {
    emails: emails.map((e) => checkEmail(e, alerts.email.length > 0 ? 'alerts.email' : 'admin_email')),
    smtpFrom: checkEmail(smtp.from ?? `alertmanager@${checkServerName(config.domain)}`, 'alerts.smtp.from'),
    smtpSmarthost: smtp.smarthost,
    smtpRequireTls: smtp.require_tls,
    smtpAuth:
      smtp.auth_username !== undefined && smtp.auth_password_file !== undefined
        ? {
            username: smtp.auth_username,
            passwordFile: checkSecretFile(home, 'smtp.auth_password_file', smtp.auth_password_file),
          }
        : undefined,
    slack: slackUrl ? { url: slackUrl, channel: alerts.slack_channel } : undefined,
    pagerduty: routingKey
      ? {
          routingKey,
          url:
            alerts.pagerduty_url === undefined ? undefined : checkUrl('pagerduty_url', alerts.pagerduty_url),
        }
      : undefined,
  }
}

/** monitoring/: Prometheus config and rules, Alertmanager routing, a Grafana dashboard, a Vector log-shipping config. */
export function planMonitoring(home: HelixHome, config: HelixConfig): RenderedFile[] {
  const file = (name: string, values: object): RenderedFile => ({
    path: join(home.monitoringDir, name),
    data: renderTemplate(`monitoring/${name}.eta`, values),
  })
  const amValues = alertmanagerValues(home, config)
  const amInlineSecret = Boolean(amValues.slack?.url.value ?? amValues.pagerduty?.routingKey.value)
  return [
    file('prometheus.yml', prometheusValues(home, config)),
    file('rules.yml', rulesValues(config)),
    // Inline Slack URLs and PagerDuty keys are secrets: the file is then readable by its owner only.
    { ...file('alertmanager.yml', amValues), mode: amInlineSecret ? 0o600 : undefined },
    file('grafana-dashboard.json', { panels: DASHBOARD_PANELS }),
    // Log shipping: the daemon's JSON lines to Elasticsearch and/or Loki, fields mapped.
    file('vector.yaml', {}),
  ]
}
