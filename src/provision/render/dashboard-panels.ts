/** One panel of the Grafana dashboard. */
export interface DashboardPanel {
  title: string
  description: string
  type: 'timeseries' | 'stat'
  unit: string
  targets: { expr: string; legend: string }[]
  /** When the panel shows nothing on a healthy install (no GPU, auth off); absent: it always has data. */
  mayBeEmpty?: string
}

const p95 = (metric: string, by: string) =>
  `histogram_quantile(0.95, sum by (le, ${by}) (rate(${metric}_bucket[5m])))`

/** Panels of the Grafana dashboard for GPUs, inference internals, per-key usage, auth and the runtime. */
export const DETAIL_PANELS: DashboardPanel[] = [
  {
    title: 'Queue and compute time (p95)',
    description: 'Per model: time waiting in the scheduler queue against time in the backend.',
    type: 'timeseries',
    unit: 's',
    targets: [
      { expr: p95('helix_inference_queue_seconds', 'model'), legend: '{{model}} queue' },
      { expr: p95('helix_inference_compute_seconds', 'model'), legend: '{{model}} compute' },
    ],
  },
  {
    title: 'Batch size',
    description: 'Mean size of the batches inference requests ran in, per model.',
    type: 'timeseries',
    unit: 'short',
    targets: [
      {
        expr: 'sum by (model) (rate(helix_inference_batch_size_sum[5m])) / sum by (model) (rate(helix_inference_batch_size_count[5m]))',
        legend: '{{model}}',
      },
    ],
  },
  {
    title: 'Instance busy',
    description:
      'Per model version: the share of time its instances spend computing batches (busy seconds per second; more than 1 means several instances at work).',
    type: 'timeseries',
    unit: 'percentunit',
    targets: [
      {
        expr: 'sum by (model, version) (rate(helix_model_busy_seconds_total[5m]))',
        legend: '{{model}}:{{version}}',
      },
    ],
  },
  {
    title: 'Model loads',
    description: 'Per model: how long its last load took, and failed loads by reason.',
    type: 'timeseries',
    unit: 's',
    targets: [
      { expr: 'max by (model) (helix_model_last_load_seconds)', legend: '{{model}} last load' },
      {
        expr: 'sum by (model, reason) (increase(helix_model_load_failures_total[1h]))',
        legend: '{{model}} failed: {{reason}}',
      },
    ],
  },
  {
    title: 'Inference outcomes',
    description: 'Inference requests per second by model, outcome (success or an error code) and protocol.',
    type: 'timeseries',
    unit: 'reqps',
    targets: [
      {
        expr: 'sum by (model, status, protocol) (rate(helix_inference_requests_total[5m]))',
        legend: '{{model}} {{status}} ({{protocol}})',
      },
    ],
  },
  {
    title: 'Latency by route (p95)',
    description: 'Per route pattern: the 95th percentile of request duration.',
    type: 'timeseries',
    unit: 's',
    targets: [{ expr: p95('helix_request_duration_seconds', 'route'), legend: '{{route}}' }],
  },
  {
    title: 'GPU utilisation',
    description: 'Per GPU, from nvidia-smi every monitoring.gpu_interval_ms.',
    type: 'timeseries',
    unit: 'percentunit',
    mayBeEmpty: 'no NVIDIA GPU on the box',
    targets: [{ expr: 'helix_gpu_utilization_ratio', legend: 'GPU {{gpu}} {{name}}' }],
  },
  {
    title: 'GPU memory used',
    description: 'Share of each GPU memory in use (HelixGpuMemoryHigh fires above 90 %).',
    type: 'timeseries',
    unit: 'percentunit',
    mayBeEmpty: 'no NVIDIA GPU on the box',
    targets: [
      {
        expr: 'helix_gpu_memory_used_bytes / helix_gpu_memory_total_bytes',
        legend: 'GPU {{gpu}} {{name}}',
      },
    ],
  },
  {
    title: 'GPU temperature and power',
    description: 'Core temperature (°C) and power draw (W) per GPU.',
    type: 'timeseries',
    unit: 'short',
    mayBeEmpty: 'no NVIDIA GPU on the box',
    targets: [
      { expr: 'helix_gpu_temperature_celsius', legend: 'GPU {{gpu}} °C' },
      { expr: 'helix_gpu_power_watts', legend: 'GPU {{gpu}} W' },
    ],
  },
  {
    title: 'GPUs seen and driver up',
    description: 'GPUs in the last nvidia-smi sample, and whether nvidia-smi answered.',
    type: 'stat',
    unit: 'short',
    mayBeEmpty: 'no NVIDIA GPU on the box',
    targets: [
      { expr: 'sum(helix_gpu_count)', legend: 'GPUs' },
      { expr: 'min(helix_gpu_up)', legend: 'driver up' },
    ],
  },
  {
    title: 'Models per GPU',
    description: 'Model versions placed on each GPU.',
    type: 'stat',
    unit: 'short',
    mayBeEmpty: 'no model placed on a GPU',
    targets: [{ expr: 'count by (gpu) (helix_gpu_model_info)', legend: 'GPU {{gpu}}' }],
  },
  {
    title: 'Requests per API key',
    description: 'The ten busiest API keys (by id; key_id="other" beyond monitoring.max_key_series).',
    type: 'timeseries',
    unit: 'reqps',
    mayBeEmpty: 'authentication off',
    targets: [
      { expr: 'topk(10, sum by (key_id) (rate(helix_key_requests_total[5m])))', legend: '{{key_id}}' },
    ],
  },
  {
    title: 'Items and errors per API key',
    description: 'Items (batch rows) served and requests that failed, per API key and model.',
    type: 'timeseries',
    unit: 'short',
    mayBeEmpty: 'authentication off',
    targets: [
      {
        expr: 'topk(10, sum by (key_id, model) (rate(helix_key_items_total[5m])))',
        legend: '{{key_id}} {{model}} items',
      },
      {
        expr: 'topk(10, sum by (key_id, model) (rate(helix_key_requests_total{outcome="error"}[5m])))',
        legend: '{{key_id}} {{model}} errors',
      },
    ],
  },
  {
    title: 'Quota used',
    description: 'Share of each API key quota used in its current period.',
    type: 'timeseries',
    unit: 'percentunit',
    mayBeEmpty: 'no API key with a quota',
    targets: [{ expr: 'max by (key_id) (helix_quota_used_ratio)', legend: '{{key_id}}' }],
  },
  {
    title: 'Sign-ins, sign-ups and keys',
    description: 'Per hour: sign-ins by outcome, accounts created, API keys created, revoked and rotated.',
    type: 'timeseries',
    unit: 'short',
    mayBeEmpty: 'authentication off',
    targets: [
      { expr: 'sum by (outcome) (increase(helix_logins_total[1h]))', legend: 'sign-in {{outcome}}' },
      { expr: 'sum(increase(helix_users_registered_total{via="self"}[1h]))', legend: 'sign-ups' },
      { expr: 'sum by (event) (increase(helix_api_keys_events_total[1h]))', legend: 'key {{event}}' },
    ],
  },
  {
    title: 'Refused by limits',
    description: 'Requests per second refused by a rate limit (by limit) or a used-up quota.',
    type: 'timeseries',
    unit: 'reqps',
    mayBeEmpty: 'authentication off',
    targets: [
      { expr: 'sum by (limit) (rate(helix_rate_limited_total[5m]))', legend: '{{limit}}' },
      { expr: 'sum(rate(helix_quota_rejections_total[5m]))', legend: 'quota' },
    ],
  },
  {
    title: 'Database',
    description: 'Whether the database probe answers, and the pool connections by state.',
    type: 'timeseries',
    unit: 'short',
    mayBeEmpty: 'authentication off (no database)',
    targets: [
      { expr: 'min(helix_db_up)', legend: 'up' },
      { expr: 'sum by (state) (helix_db_pool_connections)', legend: '{{state}}' },
      { expr: 'sum(rate(helix_db_errors_total[5m]))', legend: 'errors/s' },
    ],
  },
  {
    title: 'JWT signing key age',
    description: 'Days since the signing key was made, against the rotation period (jwt.rotate_after_days).',
    type: 'stat',
    unit: 'd',
    mayBeEmpty: 'authentication off',
    targets: [
      { expr: 'max(helix_jwt_key_age_seconds) / 86400', legend: 'age' },
      { expr: 'max(helix_jwt_key_rotation_seconds) / 86400', legend: 'rotate after' },
    ],
  },
  {
    title: 'Event loop',
    description: 'Event-loop utilisation and p99 lag of each daemon.',
    type: 'timeseries',
    unit: 'short',
    targets: [
      { expr: 'helix_nodejs_eventloop_utilization_ratio', legend: '{{instance}} utilisation' },
      { expr: 'helix_nodejs_eventloop_lag_p99_seconds', legend: '{{instance}} lag p99 (s)' },
    ],
  },
  {
    title: 'Memory and GC',
    description: 'Resident memory, heap in use and time spent in garbage collection.',
    type: 'timeseries',
    unit: 'bytes',
    targets: [
      { expr: 'helix_process_resident_memory_bytes', legend: '{{instance}} RSS' },
      { expr: 'sum by (instance) (helix_nodejs_heap_size_used_bytes)', legend: '{{instance}} heap' },
      {
        expr: 'sum by (instance) (rate(helix_nodejs_gc_duration_seconds_sum[5m]))',
        legend: '{{instance}} GC s/s',
      },
    ],
  },
]
