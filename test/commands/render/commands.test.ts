import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import RenderDocker from '../../../src/commands/render/docker.js'
import RenderHelm from '../../../src/commands/render/helm.js'
import RenderMonitoring from '../../../src/commands/render/monitoring.js'
import RenderNginx from '../../../src/commands/render/nginx.js'
import { ROOT, tempDir } from '../../helpers/cli.js'

// The same commands in-process (the e2e file drives the built binary): flags reach the service and the
// typed report is what --json prints.
describe('render commands (in process)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let helixDir: string
  const stdout: string[] = []

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    helixDir = join(dir, 'h')
    await mkdir(helixDir)
    await writeFile(join(helixDir, 'helix.yaml'), 'domain: api.example.com\n')
    // oclif prints through console.log (this.log and the --json document alike).
    vi.spyOn(console, 'log').mockImplementation((line: unknown) => {
      stdout.push(String(line))
    })
  })
  afterAll(async () => {
    vi.restoreAllMocks()
    await cleanup()
  })

  it('render nginx --upstream --no-mtls --json returns the report', async () => {
    const report = await RenderNginx.run(
      ['--dir', helixDir, '--upstream', '10.1.1.1:8080', '--no-mtls', '--json'],
      ROOT,
    )
    expect(report).toEqual({
      artifact: 'nginx',
      created: ['nginx/nginx.conf'],
      updated: ['helix.yaml'],
      unchanged: [],
    })
    expect(JSON.parse(stdout.join(''))).toEqual(report)
  })

  it.each([
    [RenderDocker, 'docker', 7],
    [RenderHelm, 'helm', 12],
    [RenderMonitoring, 'monitoring', 5],
  ] as const)('render %s creates its files', async (command, artifact, count) => {
    stdout.length = 0
    const report = await command.run(['--dir', helixDir], ROOT)
    expect(report.artifact).toBe(artifact)
    expect(report.created).toHaveLength(count)
    expect(stdout.join('')).toContain(`Rendered ${artifact} in ${helixDir}`)
  })
})
