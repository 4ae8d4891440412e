import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isMap, parse, parseAllDocuments, parseDocument, type Scalar, type YAMLMap } from 'yaml'
import { planHelm } from '../../../src/provision/render/helm-values.js'
import { renderArtifacts } from '../../../src/provision/render/render.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { tempDir } from '../../helpers/cli.js'
import { GoTemplate } from './go-template.js'

interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string; labels?: Record<string, string> }
  // biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are checked field by field below.
  spec?: any
  data?: Record<string, unknown>
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

/** Renders every chart template as `helm template rel <chart> --set …` would, and parses the objects. */
async function helmTemplate(
  chartDir: string,
  overrides: (values: Record<string, unknown>) => void = () => {},
) {
  const chart = parse(await readFile(join(chartDir, 'Chart.yaml'), 'utf8'))
  const values = parse(await readFile(join(chartDir, 'values.yaml'), 'utf8'))
  overrides(values)
  const root = {
    Values: values,
    Release: { Name: 'rel', Namespace: 'default', Service: 'Helm' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  }
  const engine = new GoTemplate()
  const files = (await readdir(join(chartDir, 'templates'))).sort()
  for (const file of files.filter((f) => f.startsWith('_'))) {
    engine.addHelpers(await readFile(join(chartDir, 'templates', file), 'utf8'))
  }
  const objects: K8sObject[] = []
  for (const file of files.filter((f) => !f.startsWith('_'))) {
    const out = engine.render(await readFile(join(chartDir, 'templates', file), 'utf8'), root)
    for (const doc of parseAllDocuments(out)) {
      expect(doc.errors, `${file}: ${doc.errors.join('\n')}\n${out}`).toEqual([])
      const object = doc.toJS() as K8sObject | null
      if (object) objects.push(object)
    }
  }
  return objects
}

/** The fields each kind cannot go without (Kubernetes API reference), checked on a rendered object. */
function checkObject(o: K8sObject): void {
  expect(typeof o.apiVersion).toBe('string')
  expect(typeof o.kind).toBe('string')
  expect(o.metadata.name).toMatch(DNS_LABEL)
  expect(o.metadata.name.length).toBeLessThanOrEqual(63)
  for (const value of Object.values(o.metadata.labels ?? {}))
    expect(String(value).length).toBeLessThanOrEqual(63)
  switch (o.kind) {
    case 'Deployment': {
      expect(o.apiVersion).toBe('apps/v1')
      const selector = o.spec.selector.matchLabels
      expect(Object.keys(selector).length).toBeGreaterThan(0)
      expect(o.spec.template.metadata.labels).toMatchObject(selector)
      const containers = o.spec.template.spec.containers
      expect(containers.length).toBeGreaterThan(0)
      for (const c of containers) {
        expect(c.name).toMatch(DNS_LABEL)
        expect(c.image).toMatch(/^[\w./-]+:[\w.-]+$/)
        for (const p of c.ports) expect(Number.isInteger(p.containerPort)).toBe(true)
        for (const e of c.env) expect(typeof e.name).toBe('string')
        for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
          // Exactly one handler; a gRPC probe's port is a number (GRPCAction has no named ports).
          expect(['httpGet', 'grpc', 'tcpSocket', 'exec'].filter((h) => h in probe)).toHaveLength(1)
          if (probe.grpc) expect(Number.isInteger(probe.grpc.port)).toBe(true)
        }
      }
      for (const v of o.spec.template.spec.volumes) expect(v.name).toMatch(DNS_LABEL)
      break
    }
    case 'Service':
      expect(o.apiVersion).toBe('v1')
      expect(o.spec.ports.length).toBeGreaterThan(0)
      for (const p of o.spec.ports) expect(Number.isInteger(p.port)).toBe(true)
      // Several ports need a name each, unique.
      expect(new Set(o.spec.ports.map((p: { name: string }) => p.name)).size).toBe(o.spec.ports.length)
      expect(Object.keys(o.spec.selector).length).toBeGreaterThan(0)
      break
    case 'Ingress':
      expect(o.apiVersion).toBe('networking.k8s.io/v1')
      for (const rule of o.spec.rules) {
        for (const path of rule.http.paths) {
          expect(['Prefix', 'Exact', 'ImplementationSpecific']).toContain(path.pathType)
          expect(path.backend.service.name).toMatch(DNS_LABEL)
          expect(path.backend.service.port.name ?? path.backend.service.port.number).toBeTruthy()
        }
      }
      break
    case 'ConfigMap':
      expect(o.apiVersion).toBe('v1')
      for (const value of Object.values(o.data ?? {})) expect(typeof value).toBe('string')
      break
    case 'HorizontalPodAutoscaler':
      expect(o.apiVersion).toBe('autoscaling/v2')
      expect(o.spec.scaleTargetRef).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment' })
      expect(o.spec.maxReplicas).toBeGreaterThanOrEqual(o.spec.minReplicas)
      expect(o.spec.metrics.length).toBeGreaterThan(0)
      break
    case 'PodDisruptionBudget':
      expect(o.apiVersion).toBe('policy/v1')
      expect(o.spec.minAvailable ?? o.spec.maxUnavailable).toBeDefined()
      expect(Object.keys(o.spec.selector.matchLabels).length).toBeGreaterThan(0)
      break
    case 'NetworkPolicy':
      expect(o.apiVersion).toBe('networking.k8s.io/v1')
      expect(Object.keys(o.spec.podSelector.matchLabels).length).toBeGreaterThan(0)
      for (const rule of o.spec.ingress) {
        for (const p of rule.ports) expect(Number.isInteger(p.port) && p.protocol === 'TCP').toBe(true)
      }
      break
    default:
      throw new Error(`unexpected kind ${o.kind}`)
  }
}

const byKind = (objects: K8sObject[], kind: string) => objects.find((o) => o.kind === kind)

describe('helm chart', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let chartDir: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    const home = new HelixHome(join(dir, 'h'))
    await renderArtifacts(home, parseConfig({ domain: 'api.example.com' }), ['helm'])
    chartDir = home.helmDir
  })
  afterAll(() => cleanup())

  it('has a Chart.yaml (apiVersion v2) and a values.yaml documenting its keys', async () => {
    const chart = parse(await readFile(join(chartDir, 'Chart.yaml'), 'utf8'))
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'helix', type: 'application' })
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+/)
    // Every top-level key is documented: a comment above it, or above its first nested key.
    const doc = parseDocument(await readFile(join(chartDir, 'values.yaml'), 'utf8'))
    const pairs = (doc.contents as YAMLMap<Scalar<string>, unknown>).items
    expect(pairs.length).toBeGreaterThan(10)
    for (const pair of pairs) {
      const nested = isMap(pair.value) ? (pair.value.items[0]?.key as Scalar | undefined) : undefined
      const mapComment = isMap(pair.value) ? pair.value.commentBefore : undefined
      const comment =
        pair.key.commentBefore ??
        mapComment ??
        nested?.commentBefore ??
        (pair === pairs[0] ? doc.commentBefore : undefined)
      expect(comment, `values.yaml: ${pair.key.value} is undocumented`).toBeTruthy()
    }
  })

  it('renders with default values into valid objects: Deployment, Service, ConfigMap, PDB, NetworkPolicy', async () => {
    const objects = await helmTemplate(chartDir)
    for (const o of objects) checkObject(o)
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ConfigMap',
      'Deployment',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
    ])
    const deployment = byKind(objects, 'Deployment')!
    expect(deployment.metadata.name).toBe('rel-helix')
    expect(deployment.spec.replicas).toBe(2)
    const container = deployment.spec.template.spec.containers[0]
    expect(container.image).toBe(
      `helix:${parse(await readFile(join(chartDir, 'Chart.yaml'), 'utf8')).appVersion}`,
    )
    expect(container.resources.limits).not.toHaveProperty(['nvidia.com/gpu'])
    expect(container.readinessProbe.httpGet.path).toBe('/v2/health/ready')
    expect(deployment.spec.template.spec.securityContext.runAsNonRoot).toBe(true)
    // Secrets are only referenced, never part of the chart.
    const dbUrl = container.env.find((e: { name: string }) => e.name === 'DATABASE_URL')
    expect(dbUrl.valueFrom.secretKeyRef).toEqual({ name: 'helix-database', key: 'DATABASE_URL' })
    // The ConfigMap's helix.yaml is a valid helix configuration.
    const helixYaml = parseConfig(parse(String(byKind(objects, 'ConfigMap')!.data!['helix.yaml'])))
    expect(helixYaml.domain).toBe('api.example.com')
    // Behind the ingress controller: per-IP limits see the forwarded client address.
    expect(helixYaml.server.trust_proxy).toEqual(['uniquelocal'])
    expect(byKind(objects, 'Service')!.spec.selector).toEqual(deployment.spec.selector.matchLabels)
  })

  it('admits traffic to the HTTP and gRPC ports only, from networkPolicy.from; egress when listed', async () => {
    const open = byKind(await helmTemplate(chartDir), 'NetworkPolicy')!
    const deployment = byKind(await helmTemplate(chartDir), 'Deployment')!
    expect(open.spec.podSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels)
    expect(open.spec.policyTypes).toEqual(['Ingress'])
    const ports = deployment.spec.template.spec.containers[0].ports.map(
      (p: { containerPort: number }) => p.containerPort,
    )
    expect(open.spec.ingress).toEqual([{ ports: ports.map((port: number) => ({ port, protocol: 'TCP' })) }])
    const from = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }]
    const egress = [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: 5432, protocol: 'TCP' }] }]
    const closed = byKind(
      await helmTemplate(chartDir, (v) => {
        v.networkPolicy = { enabled: true, from, egress }
        ;(v.grpc as { enabled: boolean }).enabled = false
      }),
      'NetworkPolicy',
    )!
    expect(closed.spec.policyTypes).toEqual(['Ingress', 'Egress'])
    expect(closed.spec.ingress[0].from).toEqual(from)
    expect(closed.spec.ingress[0].ports).toHaveLength(1)
    expect(closed.spec.egress).toEqual(egress)
    const none = await helmTemplate(chartDir, (v) => {
      v.networkPolicy = { enabled: false }
    })
    expect(byKind(none, 'NetworkPolicy')).toBeUndefined()
  })

  it('renders GPU, ingress and autoscaling when enabled', async () => {
    const objects = await helmTemplate(chartDir, (v) => {
      Object.assign(v.gpu as object, { enabled: true, count: 2 })
      Object.assign(v.ingress as object, { enabled: true })
      Object.assign(v.autoscaling as object, { enabled: true })
      Object.assign(v.secrets as object, { redis: 'helix-redis', certs: 'helix-certs' })
      Object.assign(v.models as object, { existingClaim: 'helix-models' })
      v.tolerations = [{ key: 'dedicated', operator: 'Exists' }]
    })
    for (const o of objects) checkObject(o)
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ConfigMap',
      'Deployment',
      'HorizontalPodAutoscaler',
      'Ingress',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
    ])
    const deployment = byKind(objects, 'Deployment')!
    expect(deployment.spec).not.toHaveProperty('replicas')
    const pod = deployment.spec.template.spec
    const container = pod.containers[0]
    expect(container.resources.limits['nvidia.com/gpu']).toBe(2)
    expect(container.resources.limits.memory).toBe('4Gi')
    expect(container.image).toMatch(/-gpu$/)
    expect(container.env).toContainEqual({ name: 'HELIX_DEVICE', value: 'cuda' })
    expect(pod.tolerations.map((t: { key: string }) => t.key)).toEqual(['nvidia.com/gpu', 'dedicated'])
    expect(
      pod.volumes.find((v: { name: string }) => v.name === 'models').persistentVolumeClaim.claimName,
    ).toBe('helix-models')
    const ingress = byKind(objects, 'Ingress')!
    expect(ingress.spec.rules[0].host).toBe('api.example.com')
    expect(ingress.spec.tls[0].hosts).toEqual(['api.example.com'])
    expect(byKind(objects, 'HorizontalPodAutoscaler')!.spec.scaleTargetRef.name).toBe(
      deployment.metadata.name,
    )
  })

  it('exposes the gRPC face: container port, HELIX_GRPC_PORT, a Service port with appProtocol grpc', async () => {
    const objects = await helmTemplate(chartDir)
    const container = byKind(objects, 'Deployment')!.spec.template.spec.containers[0]
    expect(container.args).toEqual(['serve'])
    expect(container.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'grpc', containerPort: 8081, protocol: 'TCP' },
    ])
    expect(container.env).toContainEqual({ name: 'HELIX_GRPC_PORT', value: '8081' })
    // By default both probes ask the REST face: it works whether or not the daemon serves TLS.
    expect(container.readinessProbe.httpGet).toEqual({ path: '/v2/health/ready', port: 'http' })
    expect(byKind(objects, 'Service')!.spec.ports).toEqual([
      { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
      { name: 'grpc', port: 8081, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'grpc' },
    ])
    const helixYaml = parseConfig(parse(String(byKind(objects, 'ConfigMap')!.data!['helix.yaml'])))
    expect(helixYaml.server.grpc).toMatchObject({ enabled: true, max_message_bytes: 64 * 1024 * 1024 })
  })

  it('probes readiness over grpc.health.v1 when asked, and refuses that with a TLS daemon', async () => {
    const objects = await helmTemplate(chartDir, (v) => {
      Object.assign(v.grpc as object, { grpcReadinessProbe: true })
    })
    for (const o of objects) checkObject(o)
    const container = byKind(objects, 'Deployment')!.spec.template.spec.containers[0]
    expect(container.readinessProbe).toEqual({ grpc: { port: 8081, service: '' }, periodSeconds: 5 })
    // Liveness stays on /v2/health/live: the gRPC health service reports readiness, which a
    // database outage takes away without the process needing a restart.
    expect(container.livenessProbe.httpGet.path).toBe('/v2/health/live')
    await expect(
      helmTemplate(chartDir, (v) => {
        Object.assign(v.grpc as object, { grpcReadinessProbe: true })
        Object.assign((v.config as { server: object }).server, { tls: true })
      }),
    ).rejects.toThrow(/kubelet's gRPC probe does not speak TLS/)
  })

  it('runs serve --no-grpc without a gRPC port when grpc.enabled is false', async () => {
    const objects = await helmTemplate(chartDir, (v) => {
      Object.assign(v.grpc as object, { enabled: false, grpcReadinessProbe: true })
      Object.assign((v.grpc as { ingress: object }).ingress, { enabled: true })
    })
    for (const o of objects) checkObject(o)
    expect(objects.filter((o) => o.kind === 'Ingress')).toEqual([])
    const container = byKind(objects, 'Deployment')!.spec.template.spec.containers[0]
    expect(container.args).toEqual(['serve', '--no-grpc'])
    expect(container.ports.map((p: { name: string }) => p.name)).toEqual(['http'])
    expect(container.env.map((e: { name: string }) => e.name)).not.toContain('HELIX_GRPC_PORT')
    expect(container.readinessProbe.httpGet.path).toBe('/v2/health/ready')
    expect(byKind(objects, 'Service')!.spec.ports.map((p: { name: string }) => p.name)).toEqual(['http'])
  })

  it('adds a gRPC Ingress beside the REST one on the same host, speaking GRPC to the pods', async () => {
    const objects = await helmTemplate(chartDir, (v) => {
      Object.assign(v.ingress as object, { enabled: true })
      Object.assign((v.grpc as { ingress: object }).ingress, { enabled: true })
    })
    for (const o of objects) checkObject(o)
    const ingresses = objects.filter((o) => o.kind === 'Ingress')
    expect(ingresses.map((o) => o.metadata.name).sort()).toEqual(['rel-helix', 'rel-helix-grpc'])
    const rest = ingresses.find((o) => o.metadata.name === 'rel-helix')!
    const grpc = ingresses.find((o) => o.metadata.name === 'rel-helix-grpc')!
    expect(grpc.metadata).toMatchObject({
      annotations: {
        'nginx.ingress.kubernetes.io/backend-protocol': 'GRPC',
        'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      },
    })
    expect(rest.metadata).not.toHaveProperty(['annotations', 'nginx.ingress.kubernetes.io/backend-protocol'])
    expect(grpc.spec.tls).toEqual([{ hosts: ['api.example.com'], secretName: 'helix-ingress-tls' }])
    const [rule] = grpc.spec.rules
    expect(rule.host).toBe('api.example.com')
    expect(rule.http.paths.map((p: { path: string }) => p.path)).toEqual([
      '/inference.GRPCInferenceService',
      '/grpc.health.v1.Health',
      '/grpc.reflection.v1.ServerReflection',
      '/grpc.reflection.v1alpha.ServerReflection',
    ])
    for (const path of rule.http.paths) {
      expect(path.backend.service).toEqual({ name: 'rel-helix', port: { name: 'grpc' } })
    }
    const own = await helmTemplate(chartDir, (v) => {
      Object.assign((v.grpc as { ingress: object }).ingress, {
        enabled: true,
        host: 'grpc.example.com',
        tlsSecretName: 'grpc-tls',
      })
    })
    expect(byKind(own, 'Ingress')!.spec.tls).toEqual([
      { hosts: ['grpc.example.com'], secretName: 'grpc-tls' },
    ])
  })

  it('takes the gRPC port and switch from helix.yaml', () => {
    const values = (settings: Record<string, unknown>) =>
      parse(
        planHelm(new HelixHome(join(dir, 'grpc')), parseConfig(settings), '1.2.3').find((f) =>
          f.path.endsWith('values.yaml'),
        )!.data,
      )
    expect(values({ server: { port: 9000 } }).grpc).toMatchObject({
      enabled: true,
      port: 9001,
      targetPort: 9001,
    })
    expect(values({ server: { grpc: { port: 50051, max_message_bytes: 8192 } } })).toMatchObject({
      grpc: { port: 50051, targetPort: 50051 },
      config: { server: { grpc: { max_message_bytes: 8192 } } },
    })
    expect(values({ server: { grpc: { enabled: false } } }).grpc).toMatchObject({
      enabled: false,
      port: 8081,
    })
  })

  it('enables GPUs by default when models.device is cuda', async () => {
    const files = planHelm(
      new HelixHome(join(dir, 'gpu')),
      parseConfig({ models: { device: 'cuda' } }),
      '1.2.3',
    )
    const values = parse(files.find((f) => f.path.endsWith('values.yaml'))!.data)
    expect(values.gpu.enabled).toBe(true)
    expect(values.config.models.device).toBe('cuda')
    expect(parse(files.find((f) => f.path.endsWith('Chart.yaml'))!.data).appVersion).toBe('1.2.3')
  })
})
