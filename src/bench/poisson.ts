/**
 * Gaps between arrivals of a Poisson process with `rate` arrivals per second: exponentially
 * distributed with mean 1/rate (inverse transform sampling). `random` is injectable for tests.
 */
export function* poissonGapsMs(rate: number, random: () => number = Math.random): Generator<number> {
  const meanMs = 1000 / rate
  for (;;) yield -Math.log(1 - random()) * meanMs
}
