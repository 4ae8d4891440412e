import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterEach, describe, expect, it } from 'vitest'
import { HELIX_BIN, runHelix, runHelixJson, tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function helixDir(): Promise<string> {
  const { dir, cleanup } = await tempDir('helix-certs-e2e-')
  cleanups.push(cleanup)
  return join(dir, 'h')
}

function jsonError(stderr: string): { code: string; message: string; hint?: string } {
  return JSON.parse(stderr.trim().split('\n').at(-1)!).error
}

interface Summary {
  role: string
  file: string
  subject: string
  sans: string[]
  daysLeft: number
  warning?: string
}

describe('helix certs (built binary)', () => {
  it('init prints the client.p12 password once; a second init keeps every certificate', async () => {
    const dir = await helixDir()
    const first = await runHelixJson<{ created: string[]; clientP12Password?: string }>([
      'init',
      '--yes',
      '--dir',
      dir,
    ])
    expect(first.created).toEqual(
      expect.arrayContaining(['certs/ca.crt', 'certs/ca.key', 'certs/server.crt', 'certs/client.p12']),
    )
    expect(first.clientP12Password).toMatch(/^[A-Za-z0-9_-]{32}$/)
    const p12 = await readFile(join(dir, 'certs/client.p12'))
    const second = await runHelixJson<{ kept: string[]; clientP12Password?: string }>([
      'init',
      '--yes',
      '--dir',
      dir,
    ])
    expect(second.kept).toEqual(expect.arrayContaining(['certs/ca.crt', 'certs/client.p12']))
    expect(second.clientP12Password).toBeUndefined()
    expect(await readFile(join(dir, 'certs/client.p12'))).toEqual(p12)
    // The password is nowhere in the helix directory.
    for (const name of await readdir(dir, { recursive: true })) {
      const text = await readFile(join(dir, name)).catch(() => Buffer.alloc(0))
      expect(text.includes(first.clientP12Password!)).toBe(false)
    }
  })

  it('init without --json shows the password with a note that it is not stored', async () => {
    const dir = await helixDir()
    const result = await runHelix(['init', '--yes', '--dir', dir])
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toMatch(
      /client\.p12 password: [A-Za-z0-9_-]{32}\n.*shown only this once.*does not keep it/,
    )
  })

  it('runs ca → issue → list → verify → rotate --ca → rotate --finish with --json', async () => {
    const dir = await helixDir()
    const ca = await runHelixJson<{ created: string[]; ca: Summary }>([
      'certs',
      'ca',
      '--dir',
      dir,
      '--key-type',
      'rsa',
    ])
    expect(ca.created).toEqual(['certs/ca.crt', 'certs/ca.key'])
    expect(ca.ca).toMatchObject({ role: 'ca', key: 'rsa-3072' })

    const server = await runHelixJson<{ certificate: Summary }>([
      'certs',
      'issue',
      'server',
      '--dir',
      dir,
      '--san',
      'api.example.com',
      '--days',
      '30',
    ])
    expect(server.certificate.sans).toEqual([
      'DNS:localhost',
      'DNS:api.example.com',
      'IP:127.0.0.1',
      'IP:::1',
    ])
    expect(server.certificate.daysLeft).toBe(29)
    const client = await runHelixJson<{ certificate: Summary; clientP12Password?: string }>(
      ['certs', 'issue', 'client', '--dir', dir, '--name', 'ci'],
      { env: { HELIX_P12_PASSWORD: 'from-the-environment' } },
    )
    expect(client.certificate.subject).toBe('CN=ci, O=Helix')
    expect(client.clientP12Password).toBeUndefined()

    const list = await runHelixJson<{ certificates: Summary[]; warnings: string[] }>([
      'certs',
      'list',
      '--dir',
      dir,
    ])
    expect(list.certificates.map((c) => c.role)).toEqual(['ca', 'server', 'client'])
    // The 30-day server certificate is already under the default warn_days of 30.
    expect(list.warnings).toEqual(['certs/server.crt expires in 29 days (under 30).'])

    const verify = await runHelixJson<{ ok: boolean; host: string }>([
      'certs',
      'verify',
      '--dir',
      dir,
      '--host',
      'api.example.com',
    ])
    expect(verify).toMatchObject({ ok: true, host: 'api.example.com' })

    const roll = await runHelixJson<{ action: string; trusted: string[]; clientP12Password: string }>([
      'certs',
      'rotate',
      '--ca',
      '--dir',
      dir,
    ])
    expect(roll.action).toBe('ca')
    expect(roll.trusted).toHaveLength(2)
    expect(roll.clientP12Password).toMatch(/^[A-Za-z0-9_-]{32}$/)
    const afterRoll = await runHelixJson<{ certificates: Summary[] }>(['certs', 'list', '--dir', dir])
    expect(afterRoll.certificates.map((c) => c.role)).toEqual(['ca', 'previous-ca', 'server', 'client'])
    expect(afterRoll.certificates.find((c) => c.role === 'server')!.sans).toContain('DNS:api.example.com')

    const finish = await runHelixJson<{ action: string; trusted: string[] }>([
      'certs',
      'rotate',
      '--finish',
      '--dir',
      dir,
    ])
    expect(finish).toMatchObject({ action: 'finish', created: ['certs/ca-bundle.crt'] })
    expect((await runHelixJson<{ ok: boolean }>(['certs', 'verify', '--dir', dir])).ok).toBe(true)
  })

  it('prints human tables and warns on stderr under tls.warn_days', async () => {
    const dir = await helixDir()
    await runHelixJson(['init', '--yes', '--dir', dir])
    await writeFile(join(dir, 'helix.yaml'), 'tls:\n  warn_days: 120\n')
    const list = await runHelix(['certs', 'list', '--dir', dir])
    expect(list.exitCode).toBe(0)
    expect(list.stdout).toMatch(/^ROLE\s+FILE\s+SUBJECT\s+SANS\s+NOT AFTER\s+DAYS LEFT/)
    expect(list.stdout).toMatch(
      /server\s+certs\/server\.crt\s+CN=localhost, O=Helix\s+DNS:localhost IP:127\.0\.0\.1 IP:::1\s+\d{4}-\d\d-\d\d\s+89\s+WARN/,
    )
    expect(list.stderr).toContain('Warning: certs/server.crt expires in 89 days (under 120).')
    const verify = await runHelix(['certs', 'verify', '--dir', dir])
    expect(verify.stdout).toContain('All certificates verify (host localhost).')
    const rotate = await runHelix(['certs', 'rotate', '--dir', dir])
    expect(rotate.stdout).toContain('Re-issued the server and client certificates from the current CA.')
    expect(rotate.stdout).toMatch(/client\.p12 password: [A-Za-z0-9_-]{32}/)
    const ca = await runHelix(['certs', 'ca', '--force', '--dir', dir])
    expect(ca.stdout).toContain('re-issue them with `helix certs issue server`')
    const finish = await runHelix(['certs', 'rotate', '--finish', '--dir', dir])
    expect(finish.stdout).toContain('No CA roll in progress')
  })

  it('exits 1 with CERT_* codes when verification fails, and 2 for bad input', async () => {
    const dir = await helixDir()
    const missing = await runHelix(['certs', 'list', '--dir', dir, '--json'])
    expect(missing.exitCode).toBe(2)
    expect(missing.stdout).toBe('')
    expect(jsonError(missing.stderr)).toMatchObject({
      code: 'CA_MISSING',
      hint: expect.stringContaining('helix certs ca'),
    })

    await runHelixJson(['init', '--yes', '--dir', dir])
    const mismatch = await runHelix([
      'certs',
      'verify',
      '--dir',
      dir,
      '--host',
      'other.example.com',
      '--json',
    ])
    expect(mismatch.exitCode).toBe(1)
    expect(mismatch.stdout).toBe('')
    expect(jsonError(mismatch.stderr)).toMatchObject({ code: 'CERT_HOST_MISMATCH' })

    const human = await runHelix(['certs', 'verify', '--dir', dir, '--host', 'other.example.com'])
    expect(human.exitCode).toBe(1)
    expect(human.stdout).toMatch(/FAIL\s+certs\/server\.crt\s+host\s+CERT_HOST_MISMATCH/)
    expect(human.stderr).toContain('Error: certs/server.crt: no SAN matches other.example.com')

    const days = await runHelix(['certs', 'issue', 'server', '--days', '398', '--dir', dir, '--json'])
    expect(days.exitCode).toBe(2)
    expect(jsonError(days.stderr).code).toBe('CERT_DAYS_INVALID')
    const both = await runHelix(['certs', 'rotate', '--ca', '--finish', '--dir', dir, '--json'])
    expect(both.exitCode).toBe(2)
    const kind = await runHelix(['certs', 'issue', 'intermediate', '--dir', dir, '--json'])
    expect(kind.exitCode).toBe(2)

    await writeFile(join(dir, 'certs/server.crt'), 'not a certificate')
    const corrupt = await runHelix(['certs', 'list', '--dir', dir, '--json'])
    expect(corrupt.exitCode).toBe(2)
    expect(jsonError(corrupt.stderr)).toMatchObject({
      code: 'CERT_CORRUPT',
      message: expect.stringContaining('certs/server.crt'),
    })
  })

  it.skipIf(process.platform === 'win32')(
    'leaves no temp file and no partial leaf when a write fails midway (file-size limit)',
    async () => {
      const dir = await helixDir()
      await runHelixJson(['init', '--yes', '--dir', dir])
      const before = await readdir(join(dir, 'certs'))
      const bytes = await Promise.all(before.map((f) => readFile(join(dir, 'certs', f))))
      // ulimit -f 1 caps files at 1 KiB: client.crt and client.key fit, client.p12 (about 1.6 KiB) does not,
      // so the batch fails on its last temp file, as a full disk or quota would.
      const result = await execa(
        'sh',
        ['-c', `ulimit -f 1; exec node ${HELIX_BIN} certs issue client --dir ${dir} --json`],
        { reject: false },
      )
      expect(result.exitCode).toBe(1)
      expect(await readdir(join(dir, 'certs'))).toEqual(before)
      const after = await Promise.all(before.map((f) => readFile(join(dir, 'certs', f))))
      expect(after).toEqual(bytes)
    },
  )
})

describe.skipIf(!hasTool('openssl'))('helix init certificates checked by openssl', () => {
  it('passes openssl verify for server.crt and client.crt with localhost and 127.0.0.1 in the SANs', async () => {
    const dir = await helixDir()
    await runHelixJson(['init', '--yes', '--dir', dir])
    const verify = await execa('openssl', [
      'verify',
      '-CAfile',
      join(dir, 'certs/ca.crt'),
      join(dir, 'certs/server.crt'),
      join(dir, 'certs/client.crt'),
    ])
    expect(verify.stdout).toBe(`${join(dir, 'certs/server.crt')}: OK\n${join(dir, 'certs/client.crt')}: OK`)
    const text = await execa('openssl', [
      'x509',
      '-in',
      join(dir, 'certs/server.crt'),
      '-noout',
      '-ext',
      'subjectAltName',
    ])
    expect(text.stdout).toContain('DNS:localhost, IP Address:127.0.0.1')
  })
})
