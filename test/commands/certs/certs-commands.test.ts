import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import CertsCa from '../../../src/commands/certs/ca.js'
import CertsIssue from '../../../src/commands/certs/issue.js'
import CertsList from '../../../src/commands/certs/list.js'
import CertsRotate from '../../../src/commands/certs/rotate.js'
import CertsVerify from '../../../src/commands/certs/verify.js'
import type { CaResult } from '../../../src/provision/certs/authority.js'
import type { IssueResult } from '../../../src/provision/certs/issue.js'
import type { RotateResult } from '../../../src/provision/certs/rotate.js'
import type { VerifyResult } from '../../../src/provision/certs/verify.js'
import type { ListResult } from '../../../src/state/certs/list.js'
import { tempDir } from '../../helpers/cli.js'
import { runInProcess } from '../keys/in-process.js'

let dir: string
let cleanup: () => Promise<void>
beforeEach(async () => {
  const temp = await tempDir('helix-certs-cmd-')
  dir = join(temp.dir, 'h')
  cleanup = temp.cleanup
})
afterEach(() => cleanup())

// The same commands in process so coverage sees src/commands/certs; certs.e2e.test.ts drives the binary.
describe('helix certs commands (in process)', () => {
  it('ca creates, then keeps; --force replaces and says the leaves need re-issuing', async () => {
    const first = await runInProcess<CaResult>(CertsCa, ['--dir', dir, '--key-type', 'ecdsa'])
    expect(first.exitCode).toBe(0)
    expect(first.stdout).toMatch(
      /Certificate authority: CN=Helix Root CA [0-9a-f]{8}, O=Helix \(ecdsa-p256, until \d{4}-\d\d-\d\d, \d+ days left\)/,
    )
    expect(first.stdout).toContain('created  certs/ca.key')
    const again = await runInProcess<CaResult>(CertsCa, ['--dir', dir])
    expect(again.stdout).toContain('kept     certs/ca.crt')
    await runInProcess(CertsIssue, ['server', '--dir', dir])
    const forced = await runInProcess<CaResult>(CertsCa, ['--dir', dir, '--force'])
    expect(forced.result?.leavesNeedReissue).toBe(true)
    expect(forced.stdout).toContain('no longer verify')
  })

  it('issue server and client print the certificate, SANs and a generated password once', async () => {
    await runInProcess(CertsCa, ['--dir', dir])
    const server = await runInProcess<IssueResult>(CertsIssue, [
      'server',
      '--dir',
      dir,
      '--san',
      '10.0.0.7',
      '--name',
      'edge',
      '--days',
      '60',
      '--key-type',
      'rsa',
    ])
    expect(server.exitCode).toBe(0)
    expect(server.result?.certificate).toMatchObject({
      subject: 'CN=edge, O=Helix',
      key: 'rsa-2048',
      daysLeft: 59,
    })
    expect(server.stdout).toContain('Issued server certificate: CN=edge, O=Helix')
    expect(server.stdout).toContain('SANs: DNS:localhost, IP:10.0.0.7, IP:127.0.0.1, IP:::1')
    const client = await runInProcess<IssueResult>(CertsIssue, ['client', '--dir', dir])
    const password = client.result?.clientP12Password
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(client.stdout.split(password!).length - 1).toBe(1)
    expect(client.stdout).toContain('shown only this once')
    const given = await runInProcess<IssueResult>(CertsIssue, [
      'client',
      '--dir',
      dir,
      '--p12-password',
      'a-given-password',
    ])
    expect(given.result?.clientP12Password).toBeUndefined()
    expect(given.stdout).not.toContain('a-given-password')
    expect(given.stdout).not.toContain('client.p12 password')
  })

  it('list, verify and rotate render tables and typed results', async () => {
    await runInProcess(CertsCa, ['--dir', dir])
    await runInProcess(CertsIssue, ['server', '--dir', dir, '--days', '10'])
    await runInProcess(CertsIssue, ['client', '--dir', dir])
    const list = await runInProcess<ListResult>(CertsList, ['--dir', dir])
    expect(list.stdout).toMatch(/^ROLE\s+FILE/)
    expect(list.stderr).toContain('Warning: certs/server.crt expires in 9 days (under 30).')
    expect(list.result?.certificates).toHaveLength(3)

    const verify = await runInProcess<VerifyResult>(CertsVerify, ['--dir', dir, '--host', '127.0.0.1'])
    expect(verify.exitCode).toBe(0)
    expect(verify.result?.ok).toBe(true)
    expect(verify.stdout).toContain('All certificates verify (host 127.0.0.1).')
    const failed = await runInProcess<VerifyResult>(CertsVerify, ['--dir', dir, '--host', 'nope.example.com'])
    expect(failed.exitCode).toBe(1)
    expect(failed.stdout).toContain('Verification failed.')
    expect(failed.stderr).toContain('Error: certs/server.crt: no SAN matches nope.example.com')

    const roll = await runInProcess<RotateResult>(CertsRotate, ['--dir', dir, '--ca'])
    expect(roll.stdout).toContain('Rolled the CA and re-issued the leaves.')
    expect(roll.stdout).toMatch(/Trusted CAs: CN=Helix Root CA \w+, O=Helix; CN=Helix Root CA \w+, O=Helix/)
    const leaves = await runInProcess<RotateResult>(CertsRotate, [
      '--dir',
      dir,
      '--p12-password',
      'rotate-password',
    ])
    expect(leaves.result?.action).toBe('leaves')
    const finish = await runInProcess<RotateResult>(CertsRotate, ['--dir', dir, '--finish'])
    expect(finish.stdout).toContain('Finished the CA roll')
  })
})
