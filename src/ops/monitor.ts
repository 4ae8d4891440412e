import { spawn } from 'node:child_process'
import { constants, openSync } from 'node:fs'
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { parse, stringify } from 'yaml'
import { renderOne } from '../provision/render/render-one.js'
import { Failure, UserError } from '../shared/errors.js'
import type { HelixHome } from '../shared/home.js'

/**
 * `helix monitor up|status|down`: Prometheus and Alertmanager for a one-box install, run in the
 * background on the files of monitoring/ (`helix render monitoring`), their data under data/monitor/.
 */

export type MonitorTool = 'prometheus' | 'alertmanager'

/** The programs Debian installs and the package each comes in. */
const TOOLS: Record<MonitorTool, { binaries: string[]; debianPackage: string }> = {
  prometheus: { binaries: ['prometheus'], debianPackage: 'prometheus' },
  alertmanager: {
    binaries: ['prometheus-alertmanager', 'alertmanager'],
    debianPackage: 'prometheus-alertmanager',
  },
}

export interface MonitorProcess {
  tool: MonitorTool
  pid: number
  url: string
  binary: string
  log: string
}

export interface MonitorUpReport {
  started: MonitorProcess[]
  /** Already running from an earlier `helix monitor up`. */
  running: MonitorProcess[]
  /** Not installed: the Debian package to install for each. */
  missing: { tool: MonitorTool; debianPackage: string }[]
  /** Whether monitoring/ was rendered first because a file was missing. */
  rendered: boolean
}

export interface MonitorAlert {
  name: string
  severity: string
  /** firing, or pending (Prometheus only: the condition holds, its `for` has not passed yet). */
  state: string
  summary: string
  since: string
  labels: Record<string, string>
}

export interface MonitorStatusReport {
  processes: (MonitorProcess & { alive: boolean })[]
  /** Where the alerts were read: Alertmanager's API v2, else Prometheus' /api/v1/alerts. */
  source?: string
  alerts: MonitorAlert[]
}

export interface MonitorDownReport {
  stopped: MonitorProcess[]
}

export interface MonitorUpOptions {
  prometheusPort?: number
  alertmanagerPort?: number
}

const stateDir = (home: HelixHome) => join(home.dataDir, 'monitor')
const stateFile = (home: HelixHome) => join(stateDir(home), 'monitor.json')
const MONITORING_FILES = ['prometheus.yml', 'rules.yml', 'alertmanager.yml']

async function readState(home: HelixHome): Promise<MonitorProcess[]> {
  try {
    return JSON.parse(await readFile(stateFile(home), 'utf8')) as MonitorProcess[]
  } catch {
    return []
  }
}

/** Alive and still the program we started (a reused pid is someone else's process). */
async function isOurs(process_: MonitorProcess): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${process_.pid}/cmdline`, 'utf8')
    return cmdline.split('\0')[0] === process_.binary
  } catch {
    return false
  }
}

/** The first of the tool's program names found on PATH. */
async function findBinary(tool: MonitorTool): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean)
  for (const name of TOOLS[tool].binaries) {
    for (const dir of dirs) {
      const candidate = join(dir, name)
      if (
        await access(candidate, constants.X_OK).then(
          () => true,
          () => false,
        )
      )
        return candidate
    }
  }
  return undefined
}

async function waitReady(url: string, child: { exitCode: number | null }, log: string, tool: MonitorTool) {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break
    const ok = await fetch(`${url}/-/ready`)
      .then((r) => r.ok)
      .catch(() => false)
    if (ok) return
    await new Promise((r) => setTimeout(r, 200))
  }
  const tail = (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n')
  throw new Failure('MONITOR_START_FAILED', `${tool} did not become ready at ${url}.\n${tail}`, {
    hint: `Read ${log}; another program may hold the port (choose one with --${tool}-port).`,
  })
}

/**
 * The Prometheus configuration monitor up runs: monitoring/prometheus.yml with its rule files made
 * absolute and its Alertmanager and self-scrape addresses set to the ports chosen here.
 */
async function runtimePrometheusConfig(home: HelixHome, prometheusPort: number, alertmanagerPort: number) {
  const config = parse(await readFile(join(home.monitoringDir, 'prometheus.yml'), 'utf8'))
  config.rule_files = (config.rule_files ?? []).map((f: string) => join(home.monitoringDir, f))
  config.alerting = { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${alertmanagerPort}`] }] }] }
  for (const job of config.scrape_configs ?? []) {
    if (job.job_name === 'prometheus') job.static_configs = [{ targets: [`127.0.0.1:${prometheusPort}`] }]
  }
  const path = join(stateDir(home), 'prometheus.yml')
  await writeFile(
    path,
    `# Written by \`helix monitor up\` from monitoring/prometheus.yml.\n${stringify(config)}`,
  )
  return path
}

function argsFor(home: HelixHome, tool: MonitorTool, port: number, prometheusConfig: string): string[] {
  const listen = `--web.listen-address=127.0.0.1:${port}`
  if (tool === 'prometheus') {
    return [
      `--config.file=${prometheusConfig}`,
      `--storage.tsdb.path=${join(stateDir(home), 'prometheus')}`,
      listen,
      `--web.external-url=http://127.0.0.1:${port}/`,
    ]
  }
  return [
    `--config.file=${join(home.monitoringDir, 'alertmanager.yml')}`,
    `--storage.path=${join(stateDir(home), 'alertmanager')}`,
    listen,
    `--web.external-url=http://127.0.0.1:${port}/`,
    // One box: no gossip cluster (it would also take port 9094).
    '--cluster.listen-address=',
  ]
}

/** Starts Prometheus and Alertmanager (those installed) in the background on monitoring/'s files. */
export async function monitorUp(home: HelixHome, options: MonitorUpOptions = {}): Promise<MonitorUpReport> {
  await home.requireInitialised()
  const ports: Record<MonitorTool, number> = {
    prometheus: options.prometheusPort ?? 9090,
    alertmanager: options.alertmanagerPort ?? 9093,
  }
  const present = await Promise.all(
    MONITORING_FILES.map((f) =>
      readFile(join(home.monitoringDir, f)).then(
        () => true,
        () => false,
      ),
    ),
  )
  const rendered = present.includes(false)
  if (rendered) await renderOne(home, 'monitoring')

  const previous = await readState(home)
  const running: MonitorProcess[] = []
  for (const p of previous) if (await isOurs(p)) running.push(p)

  const binaries = {
    prometheus: await findBinary('prometheus'),
    alertmanager: await findBinary('alertmanager'),
  }
  const missing = (Object.keys(TOOLS) as MonitorTool[])
    .filter((tool) => !binaries[tool])
    .map((tool) => ({ tool, debianPackage: TOOLS[tool].debianPackage }))
  if (missing.length === 2) {
    throw new UserError('MONITOR_TOOL_MISSING', 'Neither Prometheus nor Alertmanager is installed.', {
      hint: 'Install them: apt-get install prometheus prometheus-alertmanager',
    })
  }

  await mkdir(stateDir(home), { recursive: true })
  const alertmanagerPort = running.find((p) => p.tool === 'alertmanager')
    ? Number(new URL(running.find((p) => p.tool === 'alertmanager')?.url ?? '').port)
    : ports.alertmanager
  const prometheusConfig = await runtimePrometheusConfig(home, ports.prometheus, alertmanagerPort)
  const started: MonitorProcess[] = []
  // Alertmanager first, so Prometheus' first alerts find it.
  for (const tool of ['alertmanager', 'prometheus'] as const) {
    const binary = binaries[tool]
    if (!binary || running.some((p) => p.tool === tool)) continue
    const log = join(stateDir(home), `${tool}.log`)
    const fd = openSync(log, 'a', 0o600)
    const child = spawn(binary, argsFor(home, tool, ports[tool], prometheusConfig), {
      detached: true,
      stdio: ['ignore', fd, fd],
    })
    child.unref()
    const url = `http://127.0.0.1:${ports[tool]}`
    const process_ = { tool, pid: child.pid ?? 0, url, binary, log }
    try {
      await waitReady(url, child, log, tool)
    } catch (error) {
      if (child.exitCode === null) child.kill('SIGTERM')
      await writeFile(stateFile(home), JSON.stringify([...running, ...started], null, 2))
      throw error
    }
    started.push(process_)
  }
  await writeFile(stateFile(home), JSON.stringify([...running, ...started], null, 2))
  return { started, running, missing, rendered }
}

interface AmAlert {
  labels: Record<string, string>
  annotations: Record<string, string>
  startsAt: string
  status: { state: string }
}
interface PromAlert {
  labels: Record<string, string>
  annotations: Record<string, string>
  activeAt: string
  state: string
}

async function getJson<T>(url: string): Promise<T> {
  let response: Response
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  } catch (error) {
    throw new Failure('MONITOR_UNREACHABLE', `${url} does not answer.`, {
      hint: 'Run `helix monitor up` (or check the log under data/monitor/).',
      cause: error,
    })
  }
  if (!response.ok) throw new Failure('MONITOR_UNREACHABLE', `${url} answered ${response.status}.`)
  return (await response.json()) as T
}

/** The processes monitor up started and the alerts that fire now. */
export async function monitorStatus(home: HelixHome): Promise<MonitorStatusReport> {
  const processes = await Promise.all(
    (await readState(home)).map(async (p) => ({ ...p, alive: await isOurs(p) })),
  )
  const alertmanager = processes.find((p) => p.tool === 'alertmanager' && p.alive)
  const prometheus = processes.find((p) => p.tool === 'prometheus' && p.alive)
  if (alertmanager) {
    const source = `${alertmanager.url}/api/v2/alerts?active=true&silenced=false&inhibited=false`
    const alerts = await getJson<AmAlert[]>(source)
    return {
      processes,
      source,
      alerts: alerts.map((a) => ({
        name: a.labels.alertname ?? '',
        severity: a.labels.severity ?? '',
        state: a.status.state === 'active' ? 'firing' : a.status.state,
        summary: a.annotations.summary ?? '',
        since: a.startsAt,
        labels: a.labels,
      })),
    }
  }
  if (prometheus) {
    const source = `${prometheus.url}/api/v1/alerts`
    const body = await getJson<{ data: { alerts: PromAlert[] } }>(source)
    return {
      processes,
      source,
      alerts: body.data.alerts.map((a) => ({
        name: a.labels.alertname ?? '',
        severity: a.labels.severity ?? '',
        state: a.state,
        summary: a.annotations.summary ?? '',
        since: a.activeAt,
        labels: a.labels,
      })),
    }
  }
  return { processes, alerts: [] }
}

/** Stops what monitor up started (SIGTERM, then SIGKILL after 10 s); their data stays. */
export async function monitorDown(home: HelixHome): Promise<MonitorDownReport> {
  const stopped: MonitorProcess[] = []
  for (const p of await readState(home)) {
    if (!(await isOurs(p))) continue
    process.kill(p.pid, 'SIGTERM')
    const deadline = Date.now() + 10_000
    while ((await isOurs(p)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    if (await isOurs(p)) process.kill(p.pid, 'SIGKILL')
    stopped.push(p)
  }
  await rm(stateFile(home), { force: true })
  return { stopped }
}
