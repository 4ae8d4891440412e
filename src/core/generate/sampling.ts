/**
 * Picking the next token from one row of logits: penalties, greedy or seeded sampling with
 * temperature and top-p, and log probabilities. Pure functions over Float32Arrays.
 */

export interface SamplerSettings {
  temperature: number
  topP: number
  presencePenalty: number
  frequencyPenalty: number
  topLogprobs: number
  logprobs: boolean
}

export interface Pick {
  token: number
  /** log softmax of the model's logits at the chosen token (before penalties and temperature). */
  logprob?: number
  top?: { token: number; logprob: number }[]
}

/**
 * A small seeded generator (SplitMix32 seeding an xoshiro128**): the same seed gives the same
 * sequence on every machine, which is what `seed` promises.
 */
export class SeededRandom {
  private s = new Uint32Array(4)

  constructor(seed: number) {
    let x = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      this.s[i] = (z ^ (z >>> 16)) >>> 0
    }
  }

  /** A float in [0, 1). */
  next(): number {
    const s = this.s
    const result = Math.imul(rotl(Math.imul(s[1] as number, 5), 7), 9) >>> 0
    const t = ((s[1] as number) << 9) >>> 0
    s[2] = (s[2] as number) ^ (s[0] as number)
    s[3] = (s[3] as number) ^ (s[1] as number)
    s[1] = (s[1] as number) ^ (s[2] as number)
    s[0] = (s[0] as number) ^ (s[3] as number)
    s[2] = (s[2] as number) ^ t
    s[3] = rotl(s[3] as number, 11)
    return result / 4294967296
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}

/** Index of the largest value of logits[offset, offset+size). */
export function argmax(logits: Float32Array, offset: number, size: number): number {
  let best = 0
  let bestValue = Number.NEGATIVE_INFINITY
  for (let i = 0; i < size; i++) {
    const v = logits[offset + i] as number
    if (v > bestValue) {
      bestValue = v
      best = i
    }
  }
  return best
}

/** log Σ exp over the row: the normaliser of log softmax. */
function logSumExp(row: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY
  for (let i = 0; i < row.length; i++) if ((row[i] as number) > max) max = row[i] as number
  let sum = 0
  for (let i = 0; i < row.length; i++) sum += Math.exp((row[i] as number) - max)
  return max + Math.log(sum)
}

/** The k largest entries of a row, largest first (k ≤ 20: a insertion list beats sorting the vocabulary). */
function topK(row: Float32Array, k: number): number[] {
  const best: number[] = []
  for (let i = 0; i < row.length; i++) {
    const v = row[i] as number
    if (best.length === k && v <= (row[best[k - 1] as number] as number)) continue
    let at = best.length === k ? k - 1 : best.length
    while (at > 0 && (row[best[at - 1] as number] as number) < v) at--
    best.splice(at, 0, i)
    if (best.length > k) best.pop()
  }
  return best
}

/**
 * Tokens more than this many logits (× temperature) below the best one are left out of sampling:
 * each has under e^-30 ≈ 1e-13 of the best one's probability, all of them together under 1e-7 of the
 * mass even for a 152k vocabulary, and their exponentials are never computed.
 */
const SAMPLING_WINDOW = 30

/** Buckets per halving of the weight when the nucleus is searched (weights 1 … 2^-44 apart). */
const BUCKETS_PER_OCTAVE = 4
const BUCKETS = 44 * BUCKETS_PER_OCTAVE + 1

/**
 * Samples from softmax(row / T), restricted to the nucleus when top_p < 1: the most probable tokens
 * whose mass reaches top_p. The nucleus is found without sorting the vocabulary: weights are
 * bucketed by magnitude, whole buckets are taken from the top until the next one would pass top_p,
 * and only that boundary bucket is sorted. Which tokens are in the set is all that matters to the
 * draw, which then scans the set in token order.
 */
function sample(row: Float32Array, settings: SamplerSettings, random: SeededRandom): number {
  let max = Number.NEGATIVE_INFINITY
  for (let i = 0; i < row.length; i++) if ((row[i] as number) > max) max = row[i] as number
  const floor = max - SAMPLING_WINDOW * settings.temperature
  const inverseT = 1 / settings.temperature
  const tokens = new Int32Array(row.length)
  const w = new Float64Array(row.length)
  let n = 0
  let total = 0
  for (let i = 0; i < row.length; i++) {
    const v = row[i] as number
    if (v < floor) continue
    const weight = Math.exp((v - max) * inverseT)
    tokens[n] = i
    w[n++] = weight
    total += weight
  }
  // keep[i] = 1 for the candidates in the nucleus (all of them when top_p is 1).
  let keep: Uint8Array | undefined
  if (settings.topP < 1) {
    const need = settings.topP * total
    const buckets = new Uint8Array(n)
    const mass = new Float64Array(BUCKETS)
    for (let i = 0; i < n; i++) {
      const bucket = Math.min(BUCKETS - 1, Math.floor(-Math.log2(w[i] as number) * BUCKETS_PER_OCTAVE))
      buckets[i] = bucket
      mass[bucket] = (mass[bucket] as number) + (w[i] as number)
    }
    let boundary = 0
    let above = 0
    while (boundary < BUCKETS - 1 && above + (mass[boundary] as number) < need)
      above += mass[boundary++] as number
    keep = new Uint8Array(n)
    const edge: number[] = []
    for (let i = 0; i < n; i++) {
      if ((buckets[i] as number) < boundary) keep[i] = 1
      else if (buckets[i] === boundary) edge.push(i)
    }
    edge.sort((a, b) => (w[b] as number) - (w[a] as number) || a - b)
    for (const i of edge) {
      if (above >= need) break
      keep[i] = 1
      above += w[i] as number
    }
    total = above
  }
  let target = random.next() * total
  let last = 0
  for (let i = 0; i < n; i++) {
    if (keep && !keep[i]) continue
    last = i
    target -= w[i] as number
    if (target < 0) return tokens[i] as number
  }
  return tokens[last] as number
}

/**
 * Chooses the next token from `logits[offset, offset+vocab)`. `counts` holds how often each token was
 * generated so far (presence and frequency penalties, OpenAI's definition); `random` is the
 * sequence's own seeded generator.
 */
export function pickToken(
  logits: Float32Array,
  offset: number,
  vocab: number,
  settings: SamplerSettings,
  counts: Map<number, number>,
  random: SeededRandom,
): Pick {
  const raw = logits.subarray(offset, offset + vocab)
  const penalised = settings.presencePenalty !== 0 || settings.frequencyPenalty !== 0
  let row = raw
  if (penalised && counts.size > 0) {
    row = Float32Array.from(raw)
    for (const [token, count] of counts)
      row[token] = (row[token] as number) - count * settings.frequencyPenalty - settings.presencePenalty
  }
  const token = settings.temperature <= 0 ? argmax(row, 0, vocab) : sample(row, settings, random)
  if (!settings.logprobs) return { token }
  const normaliser = logSumExp(raw)
  const top =
    settings.topLogprobs > 0
      ? topK(raw, settings.topLogprobs).map((t) => ({ token: t, logprob: (raw[t] as number) - normaliser }))
      : []
  return { token, logprob: (raw[token] as number) - normaliser, top }
}
