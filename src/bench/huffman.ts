/**
 * The code length of each symbol of HPACK's Huffman code (RFC 7541 Appendix B), bytes 0–255 then EOS
 * (256). The code is canonical: codes are assigned in order of length, then of symbol, so the lengths
 * alone give every code.
 */
const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28,
  28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7,
  8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19,
  13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13,
  28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21,
  22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23,
  22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25,
  25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
]

const EOS = 256

/** Each symbol's code (right-aligned in `length` bits), from the canonical assignment. */
export function huffmanCodes(): { code: number; length: number }[] {
  const order = CODE_LENGTHS.map((length, symbol) => ({ symbol, length })).sort(
    (a, b) => a.length - b.length || a.symbol - b.symbol,
  )
  const codes = new Array<{ code: number; length: number }>(order.length)
  let code = 0
  let previous = order[0].length
  for (const { symbol, length } of order) {
    code *= 2 ** (length - previous)
    previous = length
    codes[symbol] = { code, length }
    code++
  }
  return codes
}

/**
 * The decoding tree: node n's children are at 2n (bit 0) and 2n + 1 (bit 1); a child is another node
 * (a positive index) or a symbol s stored as -(s + 1). 0 is an unused branch (the code is complete,
 * so only the root has index 0).
 */
const TREE = (() => {
  const tree = new Int32Array(2 * 512)
  let nodes = 1
  huffmanCodes().forEach(({ code, length }, symbol) => {
    let node = 0
    for (let bit = length - 1; bit > 0; bit--) {
      const branch = 2 * node + (Math.floor(code / 2 ** bit) & 1)
      if (tree[branch] === 0) tree[branch] = nodes++
      node = tree[branch]
    }
    tree[2 * node + (code & 1)] = -(symbol + 1)
  })
  return tree
})()

export class HuffmanError extends Error {}

/**
 * Decodes the Huffman-coded octets `data[start, end)` into a string, one character per octet (latin1).
 * Refuses EOS inside the string and padding that is longer than 7 bits or not the most significant
 * bits of EOS (all ones), as RFC 7541 section 5.2 requires.
 */
export function huffmanDecode(data: Uint8Array, start: number, end: number): string {
  const out = Buffer.allocUnsafe(Math.ceil(((end - start) * 8) / 5))
  let length = 0
  let node = 0
  // Bits read since the last symbol, and whether they were all ones (a prefix of EOS).
  let pending = 0
  let ones = true
  for (let i = start; i < end; i++) {
    const byte = data[i]
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >> bit) & 1
      const next = TREE[2 * node + one]
      pending++
      ones &&= one === 1
      if (next < 0) {
        const symbol = -next - 1
        if (symbol === EOS) throw new HuffmanError('EOS in a Huffman-coded string')
        out[length++] = symbol
        node = 0
        pending = 0
        ones = true
      } else node = next
    }
  }
  if (pending > 7) throw new HuffmanError('Huffman padding longer than 7 bits')
  if (!ones) throw new HuffmanError('Huffman padding that is not a prefix of EOS')
  return out.toString('latin1', 0, length)
}
