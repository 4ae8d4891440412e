import { describe, expect, it } from 'vitest'
import { RequestCancel } from '../../../src/core/infer/cancel-signal.js'

describe('RequestCancel', () => {
  it('runs each listener once, in order, on the first abort only', () => {
    const cancel = new RequestCancel()
    const calls: string[] = []
    cancel.addEventListener('abort', () => calls.push('a'))
    cancel.addEventListener('abort', () => calls.push('b'))
    expect(cancel.aborted).toBe(false)
    cancel.abort()
    cancel.abort()
    expect(cancel.aborted).toBe(true)
    expect(calls).toEqual(['a', 'b'])
  })

  it('forgets removed listeners and ignores listeners added after the abort', () => {
    const cancel = new RequestCancel()
    const calls: string[] = []
    const removed = () => calls.push('removed')
    cancel.addEventListener('abort', removed)
    cancel.addEventListener('abort', () => calls.push('kept'))
    cancel.removeEventListener('abort', removed)
    cancel.removeEventListener('abort', () => calls.push('never added'))
    cancel.abort()
    cancel.addEventListener('abort', () => calls.push('late'))
    cancel.abort()
    expect(calls).toEqual(['kept'])
  })
})
