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
 * Tokens further than this below the best logit (after temperature) are left out of sampling: each
 * has a probability under e^-30 ≈ 1e-13 of the best one, so all of them together stay below 1e-7
 * of the mass even for a 152k vocabulary, and the candidates to sort stay few.
 */
const SAMPLING_WINDOW = 30

function sample(row: Float32Array, settings: SamplerSettings, random: SeededRandom): number {
  const inverseT = 1 / settings.temperature
  let max = Number.NEGATIVE_INFINITY
  for (let i = 0; i < row.length; i++) if ((row[i] as number) > max) max = row[i] as number
  const floor = max - SAMPLING_WINDOW * settings.temperature
  const candidates: { token: number; weight: number }[] = []
  let total = 0
  for (let i = 0; i < row.length; i++) {
    const v = row[i] as number
    if (v < floor) continue
    const weight = Math.exp((v - max) * inverseT)
    candidates.push({ token: i, weight })
    total += weight
  }
  candidates.sort((a, b) => b.weight - a.weight || a.token - b.token)
  let kept = candidates.length
  if (settings.topP < 1) {
    let mass = 0
    for (let i = 0; i < candidates.length; i++) {
      mass += (candidates[i] as { weight: number }).weight / total
      if (mass >= settings.topP) {
        kept = i + 1
        break
      }
    }
  }
  let keptTotal = 0
  for (let i = 0; i < kept; i++) keptTotal += (candidates[i] as { weight: number }).weight
  let target = random.next() * keptTotal
  for (let i = 0; i < kept; i++) {
    const c = candidates[i] as { token: number; weight: number }
    target -= c.weight
    if (target < 0) return c.token
  }
  return (candidates[kept - 1] as { token: number }).token
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
