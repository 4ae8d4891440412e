import { HuffmanError, huffmanDecode } from './huffman.js'

/** RFC 7541 Appendix A: the static table, index 1 first. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
]

/** A header block that cannot be decoded: HTTP/2 answers it with COMPRESSION_ERROR on the connection. */
export class HpackError extends Error {}

// An entry's size: its name and value in octets plus 32 (RFC 7541 section 4.1).
const ENTRY_OVERHEAD = 32

/**
 * An HPACK decoder (RFC 7541) for the header blocks of one connection: the static table and a dynamic
 * table that literals with incremental indexing add to and that evicts its oldest entries to stay
 * within its size, which dynamic table size updates change (at the start of a block, up to `limit`,
 * the SETTINGS_HEADER_TABLE_SIZE this side announced). Names and values are read one character per
 * octet (latin1), so an entry's length is its size in octets.
 */
export class HpackDecoder {
  /** Newest first: dynamic index 1 is entries[0]. */
  private entries: [string, string][] = []
  private size = 0
  private maxSize: number
  private at = 0

  constructor(private readonly limit = 4096) {
    this.maxSize = limit
  }

  /** The dynamic table's size in octets and its entries, newest first. */
  get table(): { size: number; maxSize: number; entries: readonly (readonly [string, string])[] } {
    return { size: this.size, maxSize: this.maxSize, entries: this.entries }
  }

  /** The header fields of one complete block, as [name, value, name, value, …]. */
  decode(block: Uint8Array): string[] {
    const fields: string[] = []
    const end = block.length
    this.at = 0
    while (this.at < end) {
      const first = block[this.at]
      if (first & 0x80) {
        const index = this.integer(block, 7)
        if (index === 0) throw new HpackError('indexed header field with index 0')
        const [name, value] = this.entry(index)
        fields.push(name, value)
      } else if (first & 0x40) {
        const index = this.integer(block, 6)
        const name = index === 0 ? this.string(block) : this.entry(index)[0]
        const value = this.string(block)
        this.insert(name, value)
        fields.push(name, value)
      } else if (first & 0x20) {
        if (fields.length > 0) throw new HpackError('dynamic table size update after a header field')
        const size = this.integer(block, 5)
        if (size > this.limit)
          throw new HpackError(`dynamic table size update to ${size}, above the ${this.limit} allowed`)
        this.maxSize = size
        this.evict(0)
      } else {
        // Literal without indexing (0000) or never indexed (0001): a 4-bit index, no table change.
        const index = this.integer(block, 4)
        const name = index === 0 ? this.string(block) : this.entry(index)[0]
        fields.push(name, this.string(block))
      }
    }
    return fields
  }

  private entry(index: number): readonly [string, string] {
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]
    const entry = this.entries[index - STATIC_TABLE.length - 1]
    if (!entry) throw new HpackError(`header index ${index} beyond the tables`)
    return entry
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD
    // An entry larger than the table empties it and is not added (RFC 7541 section 4.4).
    this.evict(size)
    if (size > this.maxSize) return
    this.entries.unshift([name, value])
    this.size += size
  }

  /** Drops the oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    while (this.entries.length > 0 && this.size + room > this.maxSize) {
      const [name, value] = this.entries.pop()!
      this.size -= name.length + value.length + ENTRY_OVERHEAD
    }
  }

  /** An integer with an N-bit prefix (RFC 7541 section 5.1), read at `this.at`. */
  private integer(block: Uint8Array, prefixBits: number): number {
    const max = (1 << prefixBits) - 1
    let value = block[this.at++] & max
    if (value < max) return value
    let shift = 0
    for (;;) {
      if (this.at >= block.length) throw new HpackError('header block ends inside an integer')
      const byte = block[this.at++]
      value += (byte & 0x7f) * 2 ** shift
      shift += 7
      if (value > 0x7fffffff) throw new HpackError('integer in a header block beyond 2^31')
      if ((byte & 0x80) === 0) return value
    }
  }

  /** A string literal (RFC 7541 section 5.2): a Huffman flag, the length, the octets. */
  private string(block: Uint8Array): string {
    if (this.at >= block.length) throw new HpackError('header block ends before a string')
    const huffman = (block[this.at] & 0x80) !== 0
    const length = this.integer(block, 7)
    const start = this.at
    const end = start + length
    if (end > block.length) throw new HpackError('string literal beyond the header block')
    this.at = end
    if (!huffman) return Buffer.from(block.buffer, block.byteOffset + start, length).toString('latin1')
    try {
      return huffmanDecode(block, start, end)
    } catch (err) {
      if (err instanceof HuffmanError) throw new HpackError(err.message)
      throw err
    }
  }
}

/** An HPACK integer with an N-bit prefix after the bits `pattern` (RFC 7541 section 5.1). */
function encodeInteger(value: number, prefixBits: number, pattern: number, out: number[]): void {
  const max = (1 << prefixBits) - 1
  if (value < max) {
    out.push(pattern | value)
    return
  }
  out.push(pattern | max)
  let rest = value - max
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80)
    rest = Math.floor(rest / 128)
  }
  out.push(rest)
}

function encodeString(text: string, out: number[]): void {
  const octets = Buffer.from(text, 'latin1')
  encodeInteger(octets.length, 7, 0, out)
  for (const octet of octets) out.push(octet)
}

/**
 * The header block of a request with these fields (names lower-case), built once and sent unchanged on
 * every stream. It starts with a dynamic table size update to 0, allowed at the start of any block, so
 * whatever SETTINGS_HEADER_TABLE_SIZE the server announces the block stays valid; then a field of the
 * static table is its index, a field whose name is there is a literal without indexing on that name,
 * and any other a literal without indexing with its name. No Huffman coding, nothing added to the
 * server's dynamic table.
 */
export function encodeHeaderBlock(fields: readonly (readonly [string, string])[]): Buffer {
  const out: number[] = [0x20]
  for (const [name, value] of fields) {
    const exact = STATIC_TABLE.findIndex(([n, v]) => n === name && v === value)
    if (exact >= 0) {
      encodeInteger(exact + 1, 7, 0x80, out)
      continue
    }
    const named = STATIC_TABLE.findIndex(([n]) => n === name)
    if (named >= 0) encodeInteger(named + 1, 4, 0, out)
    else {
      out.push(0)
      encodeString(name, out)
    }
    encodeString(value, out)
  }
  return Buffer.from(out)
}
