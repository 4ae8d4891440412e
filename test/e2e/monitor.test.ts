import { symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HELIX_BIN, runHelix, tempDir } from '../helpers/cli.js'
import { freePortPair } from '../helpers/ports.js'
import { hasTool } from '../helpers/tools.js'

/** `helix monitor up` with PATH holding only some of the programs, as on a box missing a package. */
const monitor = (args: string[], path: string) =>
  execa(process.execPath, [HELIX_BIN, 'monitor', ...args], {
    reject: false,
    env: { HELIX_DIR: undefined, PATH: path },
    stdin: 'ignore',
    timeout: 60_000,
  })

describe.skipIf(!hasTool('prometheus'))('helix monitor without the Debian packages', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let home: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('helix-monitor-'))
    home = join(dir, 'h')
    expect((await runHelix(['init', '--dir', home])).exitCode).toBe(0)
  }, 60_000)
  afterAll(async () => {
    await runHelix(['monitor', 'down', '--dir', home])
    await cleanup()
  })

  it('names both packages when neither program is installed', async () => {
    const result = await monitor(['up', '--dir', home], join(dir, 'empty-bin'))
    expect(result.exitCode).toBe(2)
    expect(result.stderr).toContain('Neither Prometheus nor Alertmanager is installed')
    expect(result.stderr).toContain('apt-get install prometheus prometheus-alertmanager')
  })

  it('starts Prometheus alone and names prometheus-alertmanager when only Alertmanager is missing', async () => {
    const bin = join(dir, 'only-prometheus')
    await execa('mkdir', ['-p', bin])
    await symlink('/usr/bin/prometheus', join(bin, 'prometheus'))
    const port = await freePortPair()
    const result = await monitor(['up', '--dir', home, '--prometheus-port', String(port)], bin)
    expect(result.exitCode, result.stderr).toBe(0)
    expect(result.stdout).toContain(`Prometheus started: http://127.0.0.1:${port}`)
    expect(result.stdout).toContain('Alertmanager is not installed: apt-get install prometheus-alertmanager')
    // Without Alertmanager, status reads Prometheus' own alert list.
    const status = await runHelix(['monitor', 'status', '--dir', home, '--json'])
    expect(status.exitCode, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout).source).toBe(`http://127.0.0.1:${port}/api/v1/alerts`)
    const down = await runHelix(['monitor', 'down', '--dir', home])
    expect(down.stdout).toContain('Prometheus stopped')
  }, 60_000)

  it('refuses a directory that helix init has not set up', async () => {
    const result = await runHelix(['monitor', 'up', '--dir', join(dir, 'nowhere')])
    expect(result.exitCode).toBe(2)
    expect(result.stderr).toContain('helix.yaml is missing')
  })
})
