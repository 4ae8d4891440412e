import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runHelixJson, tempDir } from '../helpers/cli.js'
import { hasTool } from '../helpers/tools.js'
import { nginxTest } from '../provision/render/nginx-run.js'

/** The foundation issue's "done when" list, checked as a new user would, through the built binary. */
describe.skipIf(!hasTool('openssl') || !hasTool('nginx'))(
  'foundation: init → openssl, nginx, certs, keys',
  () => {
    let dir: string
    let cleanup: () => Promise<void>
    let created: string[]

    beforeAll(async () => {
      const t = await tempDir()
      cleanup = t.cleanup
      dir = join(t.dir, 'D')
      ;({ created } = await runHelixJson<{ created: string[] }>(['init', '--yes', '--dir', dir]))
    })
    afterAll(() => cleanup())

    it('creates every file the README lists, private keys 0600', async () => {
      for (const file of [
        'helix.yaml',
        'certs/ca.crt',
        'certs/ca.key',
        'certs/server.crt',
        'certs/server.key',
        'certs/client.crt',
        'certs/client.key',
        'certs/client.p12',
        'keys/jwks.json',
        'nginx/nginx.conf',
        'docker/Dockerfile',
        'docker/Dockerfile.gpu',
        'docker/compose.yaml',
        'helm/helix/Chart.yaml',
        'helm/helix/values.yaml',
        'monitoring/prometheus.yml',
        'monitoring/rules.yml',
        'monitoring/alertmanager.yml',
        'monitoring/grafana-dashboard.json',
        'monitoring/vector.yaml',
      ]) {
        expect(created, file).toContain(file)
      }
      const privateFiles = created.filter((f) => /\.(key|p12)$|\.private\.pem$/.test(f))
      expect(privateFiles.length).toBeGreaterThanOrEqual(5)
      for (const f of privateFiles)
        expect(((await stat(join(dir, f))).mode & 0o777).toString(8), f).toBe('600')
    })

    it('openssl verifies the server and client certificates against the CA', async () => {
      for (const leaf of ['server.crt', 'client.crt']) {
        const result = await execa('openssl', [
          'verify',
          '-CAfile',
          join(dir, 'certs/ca.crt'),
          join(dir, 'certs', leaf),
        ])
        expect(result.stdout).toBe(`${join(dir, 'certs', leaf)}: OK`)
      }
      const text = await execa('openssl', [
        'x509',
        '-in',
        join(dir, 'certs/server.crt'),
        '-noout',
        '-ext',
        'subjectAltName',
      ])
      expect(text.stdout).toContain('DNS:localhost')
      expect(text.stdout).toContain('IP Address:127.0.0.1')
    })

    it('nginx -t accepts the generated nginx.conf', async () => {
      const prefix = join(dir, 'nginx')
      const result = await nginxTest(prefix, join(prefix, 'nginx.conf'))
      expect(result.stderr).toContain('test is successful')
      expect(result.exitCode).toBe(0)
    })

    it('certs list and keys rotate work as described; the old kid stays in the JWKS', async () => {
      const list = await runHelixJson<{ certificates: { role: string; daysLeft: number }[] }>([
        'certs',
        'list',
        '--dir',
        dir,
      ])
      expect(list.certificates.map((c) => c.role)).toEqual(['ca', 'server', 'client'])
      const before = JSON.parse(await readFile(join(dir, 'keys/jwks.json'), 'utf8')).keys.map(
        (k: { kid: string }) => k.kid,
      )
      expect(before).toHaveLength(1)
      await runHelixJson(['keys', 'rotate', '--dir', dir])
      const after = JSON.parse(await readFile(join(dir, 'keys/jwks.json'), 'utf8')).keys.map(
        (k: { kid: string }) => k.kid,
      )
      expect(after).toHaveLength(2)
      expect(after).toContain(before[0])
    })
  },
)
