// A second OS process hammering the same limiter script, for the cross-process TOCTOU test.
// Usage: node burst-worker.mjs <redis url> <counter key> <window ms> <requests>; script text in HELIX_RL_SCRIPT.
import { Redis } from 'ioredis'

const [url, key, windowMs, requests] = process.argv.slice(2)
const redis = new Redis(url)
redis.defineCommand('helixFixedWindow', { numberOfKeys: 1, lua: process.env.HELIX_RL_SCRIPT })
await redis.ping()
// Start together with the parent: wait for the go signal on stdin.
await new Promise((resolve) => process.stdin.once('data', resolve))
const results = await Promise.all(
  Array.from({ length: Number(requests) }, () => redis.helixFixedWindow(key, Number(windowMs), 1)),
)
process.stdout.write(JSON.stringify(results.map(([count]) => Number(count))))
await redis.quit()
process.exit(0)
