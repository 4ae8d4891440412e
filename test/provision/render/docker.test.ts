import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import draft07 from 'ajv/dist/refs/json-schema-draft-07.json' with { type: 'json' }
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { planDocker } from '../../../src/provision/render/docker-values.js'
import { renderArtifacts, rerenderArtifact } from '../../../src/provision/render/render.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { ROOT, tempDir } from '../../helpers/cli.js'

interface Instruction {
  keyword: string
  args: string
}

interface Stage {
  from: string
  name?: string
  instructions: Instruction[]
}

/** Parses a Dockerfile into stages of instructions (line continuations joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
  const stages: Stage[] = []
  for (const line of logical) {
    const [, keyword, args] = /^(\S+)\s+(.*)$/.exec(line) ?? []
    if (keyword.toUpperCase() === 'FROM') {
      const [, from, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? []
      stages.push({ from, name, instructions: [] })
    } else {
      expect(stages.length, `instruction before FROM: ${line}`).toBeGreaterThan(0)
      stages[stages.length - 1].instructions.push({ keyword: keyword.toUpperCase(), args })
    }
  }
  return stages
}

/** Sources of COPY/ADD instructions (minus flags and the destination). */
function copySources(stage: Stage): { fromStage: boolean; sources: string[] }[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    .map((i) => {
      const words = i.args.split(/\s+/)
      const flags = words.filter((w) => w.startsWith('--'))
      const paths = words.filter((w) => !w.startsWith('--'))
      return { fromStage: flags.some((f) => f.startsWith('--from=')), sources: paths.slice(0, -1) }
    })
}

const SECRET_LIKE = /(^|\/)(\.env|\.helix|certs|keys|secrets)(\/|$)|\.(key|pem|p12|crt)$/

function checkImage(text: string) {
  const stages = parseDockerfile(text)
  expect(stages.length).toBeGreaterThanOrEqual(2)
  const final = stages[stages.length - 1]
  const users = final.instructions.filter((i) => i.keyword === 'USER')
  expect(users.length, 'final stage sets USER').toBeGreaterThan(0)
  const user = users[users.length - 1].args.split(':')[0]
  expect(['root', '0']).not.toContain(user)
  const healthcheck = final.instructions.find((i) => i.keyword === 'HEALTHCHECK')
  expect(healthcheck?.args).toContain('/v2/health/ready')
  for (const stage of stages) {
    for (const copy of copySources(stage)) {
      for (const source of copy.sources) expect(source, `COPY of ${source}`).not.toMatch(SECRET_LIKE)
    }
    expect(
      stage.instructions
        .filter((i) => i.keyword === 'ENV' || i.keyword === 'ARG')
        .map((i) => i.args)
        .join(' '),
    ).not.toMatch(/PASSWORD|SECRET|TOKEN|PRIVATE/i)
  }
  // The build stage has dev dependencies (npm ci without --omit=dev) and compiles; runtime only copies.
  const build = stages.find((s) => s.name === 'build')!
  expect(build.instructions.some((i) => i.keyword === 'RUN' && /npm ci(?!.*--omit=dev)/.test(i.args))).toBe(
    true,
  )
  expect(
    build.instructions.some((i) => i.keyword === 'RUN' && i.args.includes('tsc -p tsconfig.build.json')),
  ).toBe(true)
  expect(copySources(final).every((c) => c.fromStage)).toBe(true)
  return { stages, final }
}

describe('docker files', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let home: HelixHome

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    home = new HelixHome(join(dir, 'h'))
    await renderArtifacts(home, parseConfig({}), ['docker'])
  })
  afterAll(() => cleanup())

  const read = (name: string) => readFile(join(home.dockerDir, name), 'utf8')

  it('Dockerfile: multi-stage node build → slim runtime, non-root, health-checked, nothing secret copied', async () => {
    const { stages, final } = checkImage(await read('Dockerfile'))
    expect(stages[0].from).toMatch(/^node:20-/)
    expect(final.from).toMatch(/^node:20-.*slim$/)
    expect(final.instructions.find((i) => i.keyword === 'USER')?.args).toBe('1000:1000')
  })

  it('Dockerfile.gpu: CUDA 12 runtime base with the CUDA 12 onnxruntime provider', async () => {
    const text = await read('Dockerfile.gpu')
    const { final, stages } = checkImage(text)
    expect(final.from).toMatch(/^nvidia\/cuda:12\.\d+\.\d+-.*runtime/)
    const env = (s: (typeof stages)[number]) =>
      s.instructions
        .filter((i) => i.keyword === 'ENV')
        .map((i) => i.args)
        .join(' ')
    expect(env(stages.find((s) => s.name === 'build')!)).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12')
    expect(env(final)).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12')
  })

  it('keeps keys, certificates and .env files out of the build context', async () => {
    for (const name of ['Dockerfile.dockerignore', 'Dockerfile.gpu.dockerignore']) {
      const patterns = (await read(name)).split('\n').filter((l) => l && !l.startsWith('#'))
      expect(patterns).toEqual(
        expect.arrayContaining(['.helix', '**/*.key', '**/*.pem', '**/*.p12', '**/.env', '**/secrets']),
      )
    }
  })

  it('compose.yaml is valid against the Compose Specification schema', async () => {
    const schema = JSON.parse(await readFile(join(ROOT, 'test', 'fixtures', 'compose-spec.json'), 'utf8'))
    const ajv = new Ajv({ strict: false, allErrors: true })
    // The schema names draft-07 by its https URI; Ajv registers the same meta-schema under http.
    ajv.addMetaSchema({ ...draft07, $id: schema.$schema })
    const validate = ajv.compile(schema)
    const compose = parse(await read('compose.yaml'))
    expect(validate(compose), JSON.stringify(validate.errors, null, 2)).toBe(true)
    // The schema is strict enough to catch a mistake.
    expect(validate({ services: { helix: { secret: ['db_password'] } } })).toBe(false)
    expect(validate({ services: { helix: { depends_on: { db: { condition: 'whenever' } } } } })).toBe(false)
  })

  it('compose.yaml runs helix, postgres, redis and nginx with healthchecks, volumes and secrets', async () => {
    const compose = parse(await read('compose.yaml'))
    const services = compose.services
    expect(Object.keys(services).sort()).toEqual(['helix', 'nginx', 'postgres', 'redis'])
    for (const [name, service] of Object.entries<{ healthcheck?: { test: string[] } }>(services)) {
      expect(service.healthcheck?.test, `${name} healthcheck`).toBeDefined()
    }
    expect(services.helix.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
    })
    expect(services.nginx.depends_on).toEqual({ helix: { condition: 'service_healthy' } })
    expect(Object.keys(compose.volumes).sort()).toEqual(['helix-data', 'postgres-data', 'redis-data'])
    expect(services.postgres.environment.POSTGRES_PASSWORD_FILE).toBe('/run/secrets/db_password')
    expect(services.postgres.secrets).toEqual(['db_password'])
    expect(services.helix.secrets).toEqual(['db_password'])
    // Only nginx reaches helix (its port is not published): believe the client address it forwards.
    expect(services.helix.environment.HELIX_TRUST_PROXY).toBe('uniquelocal')
    expect(services.helix.ports).toBeUndefined()
    expect(services.nginx.secrets).toEqual(['tls_server_key'])
    // No password in the environment of any service.
    expect(
      JSON.stringify(Object.values(services).map((s) => (s as { environment?: unknown }).environment)),
    ).not.toMatch(/PASSWORD=|POSTGRES_PASSWORD"/)
    // Every secret and bind-mounted file comes from the generated tree (relative to docker/).
    expect(compose.secrets.db_password.file).toBe('./secrets/db_password')
    expect(compose.secrets.tls_server_key.file).toBe('../certs/server.key')
    expect(services.nginx.volumes).toContain('./nginx.conf:/etc/nginx/nginx.conf:ro')
    expect(services.helix.deploy).toBeUndefined()
  })

  it('the compose nginx.conf points at the helix service and the TLS key secret', async () => {
    const text = await read('nginx.conf')
    expect(text).toContain('server helix:8080 max_fails=3')
    expect(text).toContain('ssl_certificate_key /run/secrets/tls_server_key;')
    expect(text).toContain('access_log /dev/stdout helix_json;')
  })

  it('generates the database password once (0600) and keeps it on every re-render', async () => {
    const path = join(home.dockerDir, 'secrets', 'db_password')
    const password = await readFile(path, 'utf8')
    expect(password).toMatch(/^[0-9a-f]{64}\n$/)
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    await renderArtifacts(home, parseConfig({}), ['docker'], { force: true })
    const report = await rerenderArtifact(home, parseConfig({}), 'docker')
    expect(report.unchanged).toContain('docker/secrets/db_password')
    expect(await readFile(path, 'utf8')).toBe(password)
  })

  it('exposes the gRPC face: EXPOSE and HELIX_GRPC_PORT in both images, compose expose, nginx publishes it', async () => {
    for (const name of ['Dockerfile', 'Dockerfile.gpu']) {
      const { final } = checkImage(await read(name))
      expect(final.instructions.filter((i) => i.keyword === 'EXPOSE').map((i) => i.args)).toEqual([
        '8080 8081',
      ])
      const env = final.instructions.find((i) => i.keyword === 'ENV')!.args
      expect(env, name).toMatch(/HELIX_PORT=8080\b/)
      expect(env, name).toMatch(/HELIX_GRPC_PORT=8081\b/)
    }
    const compose = parse(await read('compose.yaml'))
    expect(compose.services.helix.environment.HELIX_GRPC_PORT).toBe('8081')
    expect(compose.services.helix.expose).toEqual(['8080', '8081'])
    expect(compose.services.nginx.ports).toEqual(['80:80', '443:443', '8444:8444'])
    const nginx = await read('nginx.conf')
    expect(nginx).toContain('server helix:8081 max_fails=3')
    expect(nginx).toMatch(/listen 8444 ssl;\n {4}http2 on;/)
    expect(nginx).toContain('grpc_pass grpc://helix_grpc;')
  })

  it('follows server.grpc and nginx.grpc_port, and leaves gRPC out when it is off', () => {
    const plan = (settings: Record<string, unknown>) => {
      const files = planDocker(new HelixHome(join(dir, 'grpc')), parseConfig(settings), '9.9.9')
      const text = (name: string) => files.find((f) => f.path.endsWith(`/${name}`))!.data
      return { text, compose: parse(text('compose.yaml')) }
    }
    const moved = plan({ server: { port: 9000, grpc: { port: 50051 } }, nginx: { grpc_port: 9443 } })
    expect(moved.text('Dockerfile')).toContain('EXPOSE 9000 50051')
    expect(moved.compose.services.helix.expose).toEqual(['9000', '50051'])
    expect(moved.compose.services.nginx.ports).toContain('9443:8444')
    expect(moved.text('nginx.conf')).toContain('server helix:50051 max_fails=3')
    const off = plan({ server: { grpc: { enabled: false } } })
    for (const name of ['Dockerfile', 'Dockerfile.gpu']) {
      expect(off.text(name)).toMatch(/^EXPOSE 8080$/m)
      expect(off.text(name)).not.toContain('GRPC')
      checkImage(off.text(name))
    }
    expect(off.compose.services.helix.environment).not.toHaveProperty('HELIX_GRPC_PORT')
    expect(off.compose.services.helix.expose).toEqual(['8080'])
    expect(off.compose.services.nginx.ports).toEqual(['80:80', '443:443'])
    expect(off.text('nginx.conf')).not.toContain('grpc')
  })

  it('reserves NVIDIA GPUs and builds the GPU image when models.device is cuda', () => {
    const files = planDocker(
      new HelixHome(join(dir, 'gpu')),
      parseConfig({ models: { device: 'cuda' } }),
      '9.9.9',
    )
    const compose = parse(files.find((f) => f.path.endsWith('compose.yaml'))!.data)
    expect(compose.services.helix.build.dockerfile).toMatch(/Dockerfile\.gpu$/)
    expect(compose.services.helix.image).toBe('helix:9.9.9-gpu')
    expect(compose.services.helix.deploy.resources.reservations.devices).toEqual([
      { driver: 'nvidia', count: 'all', capabilities: ['gpu'] },
    ])
  })
})
