import { createHash } from 'node:crypto'

export interface TrafficShare {
  version: string
  weight: number
}

/**
 * A stable position in [0, 1) for a routing key: the same key always lands on the same version of a
 * given split (sticky A/B assignment), and keys spread evenly (SHA-256, not a weak string hash).
 */
export function stickyPoint(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) / 2 ** 32
}

/**
 * Picks a version from weighted shares among the ready ones. With a routing key the pick is sticky;
 * without, it is random. Versions that are not ready drop out and the others' weights renormalise.
 */
export function pickVersion(
  shares: TrafficShare[],
  ready: ReadonlySet<string>,
  routingKey?: string,
  random: () => number = Math.random,
): string | undefined {
  const live = shares.filter((s) => s.weight > 0 && ready.has(s.version))
  const total = live.reduce((n, s) => n + s.weight, 0)
  if (live.length === 0 || total <= 0) return undefined
  let point = (routingKey !== undefined ? stickyPoint(routingKey) : random()) * total
  for (const share of live) {
    if (point < share.weight) return share.version
    point -= share.weight
  }
  return live[live.length - 1].version
}
