import { describe, expect, it } from 'vitest'
import { encodeHeaderBlock, HpackDecoder, HpackError } from '../../src/bench/hpack.js'
import { HuffmanError, huffmanCodes, huffmanDecode } from '../../src/bench/huffman.js'

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex')
const pairs = (fields: string[]) => {
  const out: [string, string][] = []
  for (let i = 0; i < fields.length; i += 2) out.push([fields[i], fields[i + 1]])
  return out
}
const huffman = (text: string) => {
  const h = hex(text)
  return huffmanDecode(h, 0, h.length)
}

/** Huffman-codes `octets` with the table's codes, padded with ones (RFC 7541 section 5.2). */
function huffmanEncode(octets: Buffer): Buffer {
  const codes = huffmanCodes()
  const bits: number[] = []
  for (const octet of octets) {
    const { code, length } = codes[octet]
    for (let bit = length - 1; bit >= 0; bit--) bits.push(Math.floor(code / 2 ** bit) & 1)
  }
  while (bits.length % 8 !== 0) bits.push(1)
  const out = Buffer.alloc(bits.length / 8)
  bits.forEach((bit, i) => {
    out[i >> 3] |= bit << (7 - (i & 7))
  })
  return out
}

describe('HPACK Huffman code (RFC 7541 Appendix B)', () => {
  it('has the codes of Appendix B', () => {
    const codes = huffmanCodes()
    expect(codes).toHaveLength(257)
    expect(codes[0]).toEqual({ code: 0x1ff8, length: 13 })
    expect(codes[10]).toEqual({ code: 0x3ffffffc, length: 30 })
    expect(codes[48]).toEqual({ code: 0x0, length: 5 })
    expect(codes[97]).toEqual({ code: 0x3, length: 5 })
    expect(codes[122]).toEqual({ code: 0x7b, length: 7 })
    expect(codes[200]).toEqual({ code: 0x3ffffe2, length: 26 })
    expect(codes[255]).toEqual({ code: 0x3ffffee, length: 26 })
    expect(codes[256]).toEqual({ code: 0x3fffffff, length: 30 })
  })

  it('decodes the Huffman-coded strings of Appendix C.4 and C.6', () => {
    expect(huffman('f1e3 c2e5 f23a 6ba0 ab90 f4ff')).toBe('www.example.com')
    expect(huffman('a8eb 1064 9cbf')).toBe('no-cache')
    expect(huffman('25a8 49e9 5ba9 7d7f')).toBe('custom-key')
    expect(huffman('25a8 49e9 5bb8 e8b4 bf')).toBe('custom-value')
    expect(huffman('6402')).toBe('302')
    expect(huffman('aec3 771a 4b')).toBe('private')
    expect(huffman('d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff')).toBe(
      'Mon, 21 Oct 2013 20:13:21 GMT',
    )
    expect(huffman('9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3')).toBe('https://www.example.com')
    expect(huffman('')).toBe('')
  })

  it('decodes every octet, and refuses EOS, long padding and padding that is not ones', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    const coded = huffmanEncode(all)
    expect(Buffer.from(huffmanDecode(coded, 0, coded.length), 'latin1')).toEqual(all)
    // EOS itself (30 ones) inside a string.
    expect(() => huffman('ffff ffff')).toThrow(HuffmanError)
    expect(() => huffman('ffff ffff')).toThrow(/EOS/)
    // '0' (00000) then 11 bits of ones: padding longer than 7 bits.
    expect(() => huffman('07ff')).toThrow(/longer than 7 bits/)
    // '0' then 000: padding that is not a prefix of EOS.
    expect(() => huffman('00')).toThrow(/not a prefix of EOS/)
  })
})

describe('HPACK decoder (RFC 7541 Appendix C)', () => {
  it('C.1: integers with a prefix (read through dynamic table size updates)', () => {
    const d = new HpackDecoder()
    // 10 on a 5-bit prefix, then 1337 on a 5-bit prefix (1f 9a 0a).
    expect(d.decode(hex('2a'))).toEqual([])
    expect(d.table.maxSize).toBe(10)
    expect(d.decode(hex('3f 9a 0a'))).toEqual([])
    expect(d.table.maxSize).toBe(1337)
  })

  it('C.2: literal header field representations and an indexed field', () => {
    const d = new HpackDecoder()
    expect(pairs(d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')))).toEqual([
      ['custom-key', 'custom-header'],
    ])
    expect(d.table).toMatchObject({ size: 55, entries: [['custom-key', 'custom-header']] })
    const plain = new HpackDecoder()
    expect(pairs(plain.decode(hex('040c 2f73 616d 706c 652f 7061 7468')))).toEqual([
      [':path', '/sample/path'],
    ])
    expect(pairs(plain.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74')))).toEqual([
      ['password', 'secret'],
    ])
    expect(pairs(plain.decode(hex('82')))).toEqual([[':method', 'GET']])
    expect(plain.table).toMatchObject({ size: 0, entries: [] })
  })

  const requests: [string, string, [string, string][], number][] = [
    [
      '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
      [
        [':method', 'GET'],
        [':scheme', 'http'],
        [':path', '/'],
        [':authority', 'www.example.com'],
      ],
      57,
    ],
    [
      '8286 84be 5808 6e6f 2d63 6163 6865',
      '8286 84be 5886 a8eb 1064 9cbf',
      [
        [':method', 'GET'],
        [':scheme', 'http'],
        [':path', '/'],
        [':authority', 'www.example.com'],
        ['cache-control', 'no-cache'],
      ],
      110,
    ],
    [
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
      '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
      [
        [':method', 'GET'],
        [':scheme', 'https'],
        [':path', '/index.html'],
        [':authority', 'www.example.com'],
        ['custom-key', 'custom-value'],
      ],
      164,
    ],
  ]

  it('C.3 and C.4: three requests on one connection, without and with Huffman coding', () => {
    for (const coding of [0, 1]) {
      const d = new HpackDecoder()
      for (const [plain, coded, fields, size] of requests) {
        expect(pairs(d.decode(hex(coding ? coded : plain)))).toEqual(fields)
        expect(d.table.size).toBe(size)
      }
      expect(d.table.entries).toEqual([
        ['custom-key', 'custom-value'],
        ['cache-control', 'no-cache'],
        [':authority', 'www.example.com'],
      ])
    }
  })

  const responses: [string, string, [string, string][], number, [string, string][]][] = [
    [
      `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a
       3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
      `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e
       919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
      [
        [':status', '302'],
        ['cache-control', 'private'],
        ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
        ['location', 'https://www.example.com'],
      ],
      222,
      [
        ['location', 'https://www.example.com'],
        ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
        ['cache-control', 'private'],
        [':status', '302'],
      ],
    ],
    [
      '4803 3330 37c1 c0bf',
      '4883 640e ffc1 c0bf',
      [
        [':status', '307'],
        ['cache-control', 'private'],
        ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
        ['location', 'https://www.example.com'],
      ],
      222,
      [
        [':status', '307'],
        ['location', 'https://www.example.com'],
        ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
        ['cache-control', 'private'],
      ],
    ],
    [
      `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04
       677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49
       553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
      `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7
       821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed
       4ee5 b106 3d50 07`,
      [
        [':status', '200'],
        ['cache-control', 'private'],
        ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
        ['location', 'https://www.example.com'],
        ['content-encoding', 'gzip'],
        ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
      ],
      215,
      [
        ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
        ['content-encoding', 'gzip'],
        ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
      ],
    ],
  ]

  it('C.5 and C.6: three responses with a 256-octet table that evicts, without and with Huffman coding', () => {
    for (const coding of [0, 1]) {
      const d = new HpackDecoder(256)
      for (const [plain, coded, fields, size, entries] of responses) {
        expect(pairs(d.decode(hex(coding ? coded : plain)))).toEqual(fields)
        expect(d.table).toMatchObject({ size, entries })
      }
    }
  })

  it('dynamic table size updates: at the start of a block only, within the limit, evicting', () => {
    const d = new HpackDecoder(256)
    d.decode(hex(responses[0][0]))
    expect(d.table.size).toBe(222)
    // Down to 0 (everything evicted), back up to 256, then the first response again.
    expect(pairs(d.decode(Buffer.concat([hex('20 3f e1 01'), hex(responses[0][0])])))).toEqual(
      responses[0][2],
    )
    expect(d.table).toMatchObject({ size: 222, maxSize: 256, entries: responses[0][4] })
    // Down to 100 evicts all but the newest entry that fits (location, 63 octets).
    d.decode(hex('3f 45'))
    expect(d.table).toMatchObject({ size: 63, maxSize: 100, entries: [responses[0][4][0]] })
    expect(() => d.decode(hex('3f e2 01'))).toThrow(/above the 256 allowed/)
    expect(() => d.decode(hex('82 20'))).toThrow(/after a header field/)
  })

  it('an entry larger than the table empties it and is not added', () => {
    const d = new HpackDecoder(64)
    d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'))
    expect(d.table.size).toBe(55)
    const long = Buffer.concat([hex('4003 6b65 7928'), Buffer.alloc(40, 0x61)])
    expect(pairs(d.decode(long))).toEqual([['key', 'a'.repeat(40)]])
    expect(d.table).toMatchObject({ size: 0, entries: [] })
  })

  it('refuses malformed blocks with HpackError', () => {
    const d = new HpackDecoder()
    for (const [block, message] of [
      ['80', /index 0/],
      ['be', /beyond the tables/],
      ['ff 80 80 80 80 10', /beyond 2\^31/],
      ['1f', /ends inside an integer/],
      ['04', /ends before a string/],
      ['04 05 61', /beyond the header block/],
      ['04 81 00', /not a prefix of EOS/],
    ] as const) {
      expect(() => d.decode(hex(block)), block).toThrow(HpackError)
      expect(() => d.decode(hex(block)), block).toThrow(message)
    }
  })
})

describe('HPACK request blocks (encodeHeaderBlock)', () => {
  it('indexes static fields, names static names, writes other names, and decodes back unchanged', () => {
    const fields: [string, string][] = [
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/inference.GRPCInferenceService/ModelInfer'],
      [':authority', '127.0.0.1:8081'],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
      ['authorization', 'Bearer hx_x'],
    ]
    const block = encodeHeaderBlock(fields)
    // A table size update to 0, then :method POST and :scheme http by their static indices.
    expect([...block.subarray(0, 3)]).toEqual([0x20, 0x83, 0x86])
    // :path as a literal without indexing on static name 4.
    expect(block[3]).toBe(0x04)
    const d = new HpackDecoder()
    expect(pairs(d.decode(block))).toEqual(fields)
    expect(d.table).toMatchObject({ size: 0, maxSize: 0 })
  })
})
