import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { commitFiles, PRIVATE_MODE, writeFileAtomic } from '../../src/shared/atomic-write.js'
import { tempDir } from '../helpers/cli.js'

describe('atomic writes', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterEach(() => cleanup())

  it('writes every file with its mode, creating directories', async () => {
    await commitFiles([
      { path: join(dir, 'a', 'secret.key'), data: 'k', mode: PRIVATE_MODE },
      { path: join(dir, 'b', 'public.crt'), data: new Uint8Array([1, 2, 3]) },
    ])
    expect(await readFile(join(dir, 'a', 'secret.key'), 'utf8')).toBe('k')
    expect((await stat(join(dir, 'a', 'secret.key'))).mode & 0o777).toBe(0o600)
    expect((await stat(join(dir, 'b', 'public.crt'))).mode & 0o777).toBe(0o644)
    expect([...(await readFile(join(dir, 'b', 'public.crt')))]).toEqual([1, 2, 3])
  })

  it('writes nothing and leaves no temp files when one file fails', async () => {
    await writeFile(join(dir, 'existing'), 'old')
    // A directory where a file should go makes the rename fail after the first file is staged.
    const blocked = join(dir, 'blocked')
    await commitFiles([{ path: join(blocked, 'inner'), data: 'x' }])
    await expect(
      commitFiles([
        { path: join(dir, 'existing'), data: 'new' },
        { path: join(dir, 'blocked', 'inner', 'deeper'), data: 'y' },
        { path: blocked, data: 'z' },
      ]),
    ).rejects.toThrow()
    expect(await readFile(join(dir, 'existing'), 'utf8')).toBe('old')
    const leftovers = (await readdir(dir, { recursive: true })).filter((f) => String(f).includes('.tmp-'))
    expect(leftovers).toEqual([])
  })

  it('replaces a file atomically', async () => {
    const target = join(dir, 'f.txt')
    await writeFileAtomic(target, 'one')
    await writeFileAtomic(target, 'two', 0o600)
    expect(await readFile(target, 'utf8')).toBe('two')
    expect((await stat(target)).mode & 0o777).toBe(0o600)
  })
})
