import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { renderRenderReport } from '../../../src/cli/output/render.js'
import { nginxOverrides, savedNginxSettings } from '../../../src/provision/render/nginx-settings.js'
import {
  ARTIFACTS,
  checkArtifacts,
  renderArtifacts,
  rerenderArtifact,
} from '../../../src/provision/render/render.js'
import {
  checkAllowSource,
  checkEmail,
  checkServerName,
  checkUpstream,
} from '../../../src/provision/render/render-inputs.js'
import { renderOne } from '../../../src/provision/render/render-one.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { tempDir } from '../../helpers/cli.js'

const ALL_FILES = [
  'nginx/nginx.conf',
  'docker/Dockerfile',
  'docker/Dockerfile.dockerignore',
  'docker/Dockerfile.gpu',
  'docker/Dockerfile.gpu.dockerignore',
  'docker/compose.yaml',
  'docker/nginx.conf',
  'docker/secrets/db_password',
  'helm/helix/Chart.yaml',
  'helm/helix/values.yaml',
  'helm/helix/.helmignore',
  'helm/helix/templates/_helpers.tpl',
  'helm/helix/templates/configmap.yaml',
  'helm/helix/templates/deployment.yaml',
  'helm/helix/templates/service.yaml',
  'helm/helix/templates/ingress.yaml',
  'helm/helix/templates/ingress-grpc.yaml',
  'helm/helix/templates/hpa.yaml',
  'helm/helix/templates/pdb.yaml',
  'helm/helix/templates/networkpolicy.yaml',
  'monitoring/prometheus.yml',
  'monitoring/rules.yml',
  'monitoring/alertmanager.yml',
  'monitoring/grafana-dashboard.json',
  'monitoring/vector.yaml',
]

describe('renderArtifacts (helix init)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let home: HelixHome
  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
    home = new HelixHome(join(dir, 'h'))
  })
  afterEach(() => cleanup())

  it('creates every file, then keeps them byte-identical on a second run', async () => {
    const first = await renderArtifacts(home, parseConfig({}), ARTIFACTS)
    expect(first).toEqual({ created: ALL_FILES, kept: [] })
    const nginx = await readFile(home.path('nginx/nginx.conf'), 'utf8')
    await writeFile(home.path('nginx/nginx.conf'), `${nginx}# edited by hand\n`)
    const second = await renderArtifacts(home, parseConfig({ nginx: { rate_per_ip: 9 } }), ARTIFACTS)
    expect(second).toEqual({ created: [], kept: ALL_FILES })
    expect(await readFile(home.path('nginx/nginx.conf'), 'utf8')).toBe(`${nginx}# edited by hand\n`)
  })

  it('regenerates with force, except the generated database password', async () => {
    await renderArtifacts(home, parseConfig({}), ['nginx', 'docker'])
    const password = await readFile(home.path('docker/secrets/db_password'), 'utf8')
    const report = await renderArtifacts(
      home,
      parseConfig({ nginx: { rate_per_ip: 9 } }),
      ['nginx', 'docker'],
      { force: true },
    )
    expect(report.kept).toEqual(['docker/secrets/db_password'])
    expect(report.created).toContain('nginx/nginx.conf')
    expect(await readFile(home.path('nginx/nginx.conf'), 'utf8')).toContain('rate=9r/s')
    expect(await readFile(home.path('docker/secrets/db_password'), 'utf8')).toBe(password)
  })

  it('writes nothing when a value is bad, even for artifacts planned before it', async () => {
    const bad = parseConfig({ nginx: { upstreams: ['not an address'] } })
    await expect(renderArtifacts(home, bad, ['helm', 'nginx'])).rejects.toMatchObject({
      code: 'INVALID_UPSTREAM',
    })
    await expect(stat(home.root)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('checkArtifacts renders in memory only, failing on a bad value', async () => {
    await expect(checkArtifacts(home, parseConfig({}), ARTIFACTS)).resolves.toBeUndefined()
    const bad = parseConfig({ nginx: { metrics_allow: ['everyone'] } })
    await expect(checkArtifacts(home, bad, ['monitoring', 'nginx'])).rejects.toMatchObject({
      code: 'INVALID_ALLOW',
    })
    await expect(stat(home.root)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('writes nothing when one file cannot be written', async () => {
    await mkdir(home.path('monitoring', 'rules.yml'), { recursive: true })
    await expect(renderArtifacts(home, parseConfig({}), ['nginx', 'monitoring'])).rejects.toBeDefined()
    await expect(stat(home.path('nginx', 'nginx.conf'))).rejects.toMatchObject({ code: 'ENOENT' })
    await expect(stat(home.path('monitoring', 'prometheus.yml'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})

describe('rerenderArtifact and renderOne (helix render)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let home: HelixHome
  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
    home = new HelixHome(join(dir, 'h'))
  })
  afterEach(() => cleanup())

  it('reports created, then unchanged, then updated when helix.yaml changes', async () => {
    const created = await rerenderArtifact(home, parseConfig({}), 'monitoring')
    expect(created).toEqual({
      artifact: 'monitoring',
      created: [
        'monitoring/prometheus.yml',
        'monitoring/rules.yml',
        'monitoring/alertmanager.yml',
        'monitoring/grafana-dashboard.json',
        'monitoring/vector.yaml',
      ],
      updated: [],
      unchanged: [],
    })
    expect((await rerenderArtifact(home, parseConfig({}), 'monitoring')).unchanged).toHaveLength(5)
    const changed = await rerenderArtifact(
      home,
      parseConfig({ admin_email: 'ops@example.com' }),
      'monitoring',
    )
    expect(changed.updated).toEqual(['monitoring/alertmanager.yml'])
    expect(changed.unchanged).toHaveLength(4)
  })

  it('refuses an uninitialised directory and writes nothing', async () => {
    await expect(renderOne(home, 'nginx')).rejects.toMatchObject({ code: 'NOT_INITIALISED', exitCode: 2 })
    await expect(stat(home.root)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('saves --upstream/--mtls into helix.yaml keeping its comments, and renders with them', async () => {
    await mkdir(home.root, { recursive: true })
    await writeFile(
      home.configFile,
      '# my settings\ndomain: api.example.com\nnginx:\n  # where daemons run\n  upstreams: ["127.0.0.1:8080"]\n',
    )
    const report = await renderOne(home, 'nginx', {
      upstreams: ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.1:8080'],
      mtls: true,
    })
    expect(report.created).toEqual(['nginx/nginx.conf'])
    expect(report.updated).toEqual(['helix.yaml'])
    const yamlText = await readFile(home.configFile, 'utf8')
    expect(yamlText).toContain('# my settings')
    expect(yamlText).toContain('# where daemons run')
    expect(parse(yamlText).nginx).toEqual({ upstreams: ['10.0.0.1:8080', '10.0.0.2:8080'], mtls: true })
    const conf = await readFile(home.path('nginx/nginx.conf'), 'utf8')
    expect(conf).toContain('server 10.0.0.2:8080')
    expect(conf).toContain('ssl_verify_client on;')
    // Monitoring follows the saved upstreams.
    await renderOne(home, 'monitoring')
    expect(await readFile(home.path('monitoring/prometheus.yml'), 'utf8')).toContain(
      '["10.0.0.1:8080","10.0.0.2:8080"]',
    )
    // The same flags again change nothing.
    const again = await renderOne(home, 'nginx', {
      upstreams: ['10.0.0.1:8080', '10.0.0.2:8080'],
      mtls: true,
    })
    expect(again).toMatchObject({ created: [], updated: [], unchanged: ['helix.yaml', 'nginx/nginx.conf'] })
  })

  it('adds an nginx section when helix.yaml has none (or only commented keys)', async () => {
    await mkdir(home.root, { recursive: true })
    await writeFile(home.configFile, 'nginx:\n  # upstreams: []\n')
    const saved = await savedNginxSettings(home, { mtls: false })
    expect(parse(saved.data)).toEqual({ nginx: { mtls: false } })
    await writeFile(home.configFile, '')
    expect(parse((await savedNginxSettings(home, { upstreams: ['a:1'] })).data)).toEqual({
      nginx: { upstreams: ['a:1'] },
    })
  })

  it('refuses to save flags into a helix.yaml that is not a mapping, leaving it untouched', async () => {
    await mkdir(home.root, { recursive: true })
    await writeFile(home.configFile, '- a list\n')
    await expect(savedNginxSettings(home, { mtls: true })).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    expect(await readFile(home.configFile, 'utf8')).toBe('- a list\n')
  })

  it('rejects a bad --upstream before writing anything', async () => {
    await mkdir(home.root, { recursive: true })
    await writeFile(home.configFile, 'domain: localhost\n')
    await expect(renderOne(home, 'nginx', { upstreams: ['127.0.0.1:99999'] })).rejects.toMatchObject({
      code: 'INVALID_UPSTREAM',
    })
    expect(await readFile(home.configFile, 'utf8')).toBe('domain: localhost\n')
    await expect(stat(home.nginxDir)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('stops before writing when a target cannot be read (a directory in its place)', async () => {
    await mkdir(home.root, { recursive: true })
    await writeFile(home.configFile, 'domain: localhost\n')
    await mkdir(home.path('monitoring', 'rules.yml'), { recursive: true })
    await expect(renderOne(home, 'monitoring')).rejects.toMatchObject({ code: 'EISDIR' })
    await expect(stat(home.path('monitoring', 'prometheus.yml'))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('renders a readable report', () => {
    const text = renderRenderReport(
      { artifact: 'helm', created: ['a'], updated: ['b'], unchanged: ['c'] },
      '/h',
    )
    expect(text.split('\n')).toEqual([
      'Rendered helm in /h',
      '  created    a',
      '  updated    b',
      '  unchanged  c',
    ])
    expect(
      renderRenderReport({ artifact: 'helm', created: [], updated: [], unchanged: ['c'] }, '/h'),
    ).toContain('already up to date')
  })
})

describe('render inputs', () => {
  it('accepts host:port upstreams (names, IPv4, bracketed IPv6) and rejects the rest', () => {
    for (const ok of ['127.0.0.1:8080', 'helix-1.internal:80', '[::1]:8080', '[fd00::5]:9000'])
      expect(checkUpstream(ok)).toBe(ok)
    for (const bad of [
      '127.0.0.1',
      ':80',
      'host:0',
      'host:65536',
      '::1:80',
      '[::1]',
      '[127.0.0.1]:80',
      'a b:80',
      'x;y:80',
      '-bad:80',
    ]) {
      expect(() => checkUpstream(bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_UPSTREAM' }))
    }
  })

  it('accepts IPs and CIDR networks for allow lists', () => {
    for (const ok of ['127.0.0.1', '::1', '10.0.0.0/8', 'fd00::/64']) expect(checkAllowSource(ok)).toBe(ok)
    for (const bad of ['all', '10.0.0.0/33', '::/129', '10.0.0.0/8/1', '10.0.0.0/x', 'localhost']) {
      expect(() => checkAllowSource(bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_ALLOW' }))
    }
  })

  it('checks server names and e-mail addresses', () => {
    expect(checkServerName('api.example.com')).toBe('api.example.com')
    expect(checkServerName('10.0.0.1')).toBe('10.0.0.1')
    expect(() => checkServerName('*.example.com')).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }))
    expect(checkEmail('ops@example.com')).toBe('ops@example.com')
    expect(() => checkEmail('no at sign')).toThrow(expect.objectContaining({ code: 'INVALID_EMAIL' }))
  })

  it('turns flags into nginx overrides only when given', () => {
    expect(nginxOverrides({})).toBeUndefined()
    expect(nginxOverrides({ upstreams: [] })).toBeUndefined()
    expect(nginxOverrides({ mtls: false })).toEqual({ mtls: false })
  })
})
