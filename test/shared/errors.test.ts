import { describe, expect, it } from 'vitest'
import { Failure, HelixError, isHelixError, toHelixError, UserError } from '../../src/shared/errors.js'

describe('error hierarchy', () => {
  it('gives user errors exit code 2 and failures exit code 1', () => {
    const user = new UserError('INVALID_INPUT', 'bad input', { hint: 'fix it' })
    const failure = new Failure('INTERNAL', 'it broke')
    expect(user.exitCode).toBe(2)
    expect(failure.exitCode).toBe(1)
    expect(user).toBeInstanceOf(HelixError)
    expect(isHelixError(failure)).toBe(true)
    expect(isHelixError(new Error('x'))).toBe(false)
  })

  it('serialises code, message, hint and details for --json', () => {
    const err = new UserError('INVALID_INPUT', 'bad input', { hint: 'fix it', details: { field: 'domain' } })
    expect(JSON.parse(JSON.stringify(err))).toEqual({
      code: 'INVALID_INPUT',
      message: 'bad input',
      hint: 'fix it',
      details: { field: 'domain' },
    })
    expect(new Failure('INTERNAL', 'y').toJSON()).toEqual({ code: 'INTERNAL', message: 'y' })
  })

  it('keeps the cause for --verbose', () => {
    const cause = new Error('root cause')
    expect(new Failure('INTERNAL', 'y', { cause }).cause).toBe(cause)
  })

  it('maps oclif usage errors to USAGE with exit 2', () => {
    const parseError = Object.assign(new Error('Nonexistent flag: --bogus\nSee more help'), {
      oclif: { exit: 2 },
    })
    const mapped = toHelixError(parseError)
    expect(mapped.code).toBe('USAGE')
    expect(mapped.exitCode).toBe(2)
    expect(mapped.message).toBe('Nonexistent flag: --bogus')
  })

  it('maps permission and disk errors from node to clear codes', () => {
    const eacces = Object.assign(new Error('EACCES'), { code: 'EACCES', path: '/root/x' })
    expect(toHelixError(eacces)).toMatchObject({ code: 'NOT_WRITABLE', exitCode: 2 })
    expect(toHelixError(eacces).message).toContain('/root/x')
    const enospc = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC', path: '/data' })
    expect(toHelixError(enospc)).toMatchObject({ code: 'DISK_FULL', exitCode: 1 })
    expect(toHelixError(Object.assign(new Error('x'), { code: 'EFBIG' })).message).toBe(
      'No space left (EFBIG)',
    )
  })

  it('says which address is taken or missing when a server cannot listen, and what to do', async () => {
    const { createServer } = await import('node:net')
    const first = createServer()
    await new Promise<void>((resolve) => first.listen(0, '127.0.0.1', resolve))
    const port = (first.address() as { port: number }).port
    const second = createServer()
    const err = await new Promise<Error>((resolve) => {
      second.once('error', resolve)
      second.listen(port, '127.0.0.1')
    })
    first.close()
    const mapped = toHelixError(err)
    expect(mapped).toMatchObject({
      code: 'ADDRESS_IN_USE',
      exitCode: 1,
      message: `Cannot listen on 127.0.0.1:${port}: another process is using that port.`,
    })
    expect(mapped.hint).toMatch(/--port/)
    const missing = Object.assign(new Error('listen EADDRNOTAVAIL'), {
      code: 'EADDRNOTAVAIL',
      address: '10.255.255.1',
      port: 8080,
    })
    expect(toHelixError(missing).message).toBe(
      'Cannot listen on 10.255.255.1:8080: that address is not on this machine.',
    )
    expect(toHelixError(missing).hint).toMatch(/--host/)
  })

  it('wraps anything else as INTERNAL without losing the message', () => {
    expect(toHelixError(new Error('boom\nstack'))).toMatchObject({
      code: 'INTERNAL',
      message: 'boom',
      exitCode: 1,
    })
    expect(toHelixError('a string')).toMatchObject({ code: 'INTERNAL', message: 'a string' })
    const already = new UserError('INVALID_INPUT', 'b')
    expect(toHelixError(already)).toBe(already)
  })
})
