import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { StopStrings } from '../../../src/core/generate/stop-strings.js'
import { IncrementalDecoder, TextTokenizer } from '../../../src/core/generate/text-tokenizer.js'
import { QWEN3_TOKENIZER_DIR } from '../../helpers/text-models.js'

async function qwen3(): Promise<TextTokenizer> {
  const json = JSON.parse(await readFile(join(QWEN3_TOKENIZER_DIR, 'tokenizer.json'), 'utf8'))
  const config = JSON.parse(await readFile(join(QWEN3_TOKENIZER_DIR, 'tokenizer_config.json'), 'utf8'))
  return new TextTokenizer(json, config)
}

describe('streamed text', () => {
  it('never splits a UTF-8 character across deltas (byte-level tokens of one emoji)', async () => {
    const tokenizer = await qwen3()
    const text = 'Hello wörld 🌍 and 数一数 ✨!'
    const ids = tokenizer.encode(text)
    // Some characters take several byte-level tokens: the point of the test.
    expect(ids.length).toBeGreaterThan(text.split(' ').length + 4)
    const decoder = new IncrementalDecoder(tokenizer)
    const deltas = ids.map((id) => decoder.push(id))
    deltas.push(decoder.flush())
    for (const delta of deltas) expect(delta).not.toContain('\uFFFD')
    expect(deltas.join('')).toBe(text)
    expect(deltas.filter((d) => d === '').length).toBeGreaterThan(0)
  })

  it('holds back text that may become a stop string and cuts at the first one', () => {
    const stops = new StopStrings(['END', '\n\n'])
    expect(stops.push('abc E')).toEqual({ text: 'abc ', stopped: false })
    expect(stops.push('N')).toEqual({ text: '', stopped: false })
    expect(stops.push('x')).toEqual({ text: 'ENx', stopped: false })
    expect(stops.push('yy\n')).toEqual({ text: 'yy', stopped: false })
    expect(stops.push('\nrest')).toEqual({ text: '', stopped: true })
    const none = new StopStrings([])
    expect(none.push('END')).toEqual({ text: 'END', stopped: false })
  })
})
