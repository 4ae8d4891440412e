import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import type { RenderReport } from '../../../src/provision/render/render.js'
import { runHelix, runHelixJson, tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'
import { nginxTest } from '../../provision/render/nginx-run.js'

describe('helix render', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let helixDir: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    helixDir = join(dir, 'h')
    await runHelixJson(['init', '--yes', '--dir', helixDir])
  })
  afterAll(() => cleanup())

  it('re-renders each artifact and reports it unchanged right after init', async () => {
    for (const artifact of ['nginx', 'docker', 'helm', 'monitoring']) {
      const report = await runHelixJson<RenderReport>(['render', artifact, '--dir', helixDir])
      expect(report.artifact).toBe(artifact)
      expect(report.created).toEqual([])
      expect(report.updated).toEqual([])
      expect(report.unchanged.length).toBeGreaterThan(0)
    }
  })

  it.skipIf(!hasTool('nginx'))(
    'renders a config nginx -t accepts with the certificates init made',
    async () => {
      const result = await nginxTest(join(dir, 'prefix'), join(helixDir, 'nginx', 'nginx.conf'))
      expect(result.stderr).toContain('test is successful')
    },
  )

  it('saves --upstream and --mtls, renders them, and monitoring follows', async () => {
    const report = await runHelixJson<RenderReport>([
      'render',
      'nginx',
      '--dir',
      helixDir,
      '--upstream',
      '127.0.0.1:9001',
      '--upstream',
      '127.0.0.1:9002',
      '--mtls',
    ])
    expect(report.updated.sort()).toEqual(['helix.yaml', 'nginx/nginx.conf'])
    const settings = await readFile(join(helixDir, 'helix.yaml'), 'utf8')
    expect(parse(settings).nginx).toMatchObject({
      upstreams: ['127.0.0.1:9001', '127.0.0.1:9002'],
      mtls: true,
    })
    expect(settings).toContain('# Daemon instances nginx balances over')
    const conf = await readFile(join(helixDir, 'nginx', 'nginx.conf'), 'utf8')
    expect(conf).toContain('server 127.0.0.1:9002 max_fails=3')
    expect(conf).toContain(`ssl_client_certificate ${join(helixDir, 'certs', 'ca.crt')};`)
    if (hasTool('nginx'))
      expect(
        (await nginxTest(join(dir, 'prefix-mtls'), join(helixDir, 'nginx', 'nginx.conf'))).exitCode,
      ).toBe(0)
    const monitoring = await runHelixJson<RenderReport>(['render', 'monitoring', '--dir', helixDir])
    expect(monitoring.updated).toEqual(['monitoring/prometheus.yml'])
  })

  it('prints a human report without --json', async () => {
    const result = await runHelix(['render', 'helm', '--dir', helixDir])
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toContain(`Rendered helm in ${helixDir}`)
    expect(result.stdout).toContain('unchanged  helm/helix/values.yaml')
  })

  it('exits 2 on a bad --upstream and changes nothing', async () => {
    const before = await readFile(join(helixDir, 'helix.yaml'), 'utf8')
    const result = await runHelix(['render', 'nginx', '--dir', helixDir, '--upstream', 'nope', '--json'])
    expect(result.exitCode).toBe(2)
    expect(result.stdout).toBe('')
    expect(JSON.parse(result.stderr).error.code).toBe('INVALID_UPSTREAM')
    expect(await readFile(join(helixDir, 'helix.yaml'), 'utf8')).toBe(before)
  })

  it('exits 2 in a directory where init has not run', async () => {
    const result = await runHelix(['render', 'docker', '--dir', join(dir, 'empty'), '--json'])
    expect(result.exitCode).toBe(2)
    expect(JSON.parse(result.stderr).error.code).toBe('NOT_INITIALISED')
  })

  it('init refuses a bad --upstream before writing any key or certificate', async () => {
    const target = join(dir, 'bad-init')
    const result = await runHelix(['init', '--yes', '--dir', target, '--upstream', '10.0.0.1:80;', '--json'])
    expect(result.exitCode).toBe(2)
    expect(JSON.parse(result.stderr).error.code).toBe('INVALID_UPSTREAM')
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('a second init keeps every rendered file, the database password included', async () => {
    const password = await readFile(join(helixDir, 'docker', 'secrets', 'db_password'), 'utf8')
    const result = await runHelixJson<{ created: string[]; kept: string[] }>([
      'init',
      '--yes',
      '--dir',
      helixDir,
    ])
    expect(result.kept).toEqual(
      expect.arrayContaining(['nginx/nginx.conf', 'docker/secrets/db_password', 'helm/helix/Chart.yaml']),
    )
    expect(result.created.filter((f) => /^(nginx|docker|helm|monitoring)\//.test(f))).toEqual([])
    expect(await readFile(join(helixDir, 'docker', 'secrets', 'db_password'), 'utf8')).toBe(password)
  })
})
