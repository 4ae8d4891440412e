import { Counter, Gauge, type Registry } from 'prom-client'
import type { Identity } from '../identity/identity.js'
import type { RateLimitDecision, RateLimiter, RateLimitPolicy } from '../limits/limiter.js'

/** The key_id label of keys beyond the cap. */
export const OTHER_KEYS = 'other'
/** Requests on model names that never served one (or beyond MAX_MODELS names). */
export const OTHER_MODELS = '(other)'
const MAX_MODELS = 1000

/** One key and model's counts since the last scrape (added to the counters when Prometheus reads them). */
interface KeyModelCounts {
  key: string
  model: string
  ok: number
  error: number
  items: number
}

/**
 * Business series: requests, errors and items per API key id and model, sign-ups, sign-ins, key
 * events, rate-limit and quota refusals, quota use. Counted where the identity layer already records
 * usage (one place for REST and gRPC). Only the key's id is a label, never its secret; after
 * `maxKeys` distinct ids the rest fold into key_id="other" so a flood of keys cannot flood Prometheus.
 * A request costs two map look-ups and two additions to plain numbers: the per-key counts are added
 * to the prom-client counters when they are collected (a scrape), not per request, since every
 * prom-client increment hashes and validates its labels again.
 */
export class BusinessMetrics {
  private readonly keyRequests: Counter<'key_id' | 'model' | 'outcome'>
  private readonly keyItems: Counter<'key_id' | 'model'>
  private readonly keyTokens: Counter<'key_id' | 'model' | 'kind'>
  private readonly usersRegistered: Counter
  private readonly logins: Counter<'outcome'>
  private readonly keyEvents: Counter<'event'>
  private readonly rateLimitedTotal: Counter<'limit'>
  private readonly quotaRejections: Counter
  private readonly quotaUsed: Gauge<'key_id'>
  private readonly children = new Map<string, Map<string, KeyModelCounts>>()
  private readonly quotaKeys = new Set<string>()
  /** Model names that have served a request, the only ones used as labels. */
  private readonly models = new Set<string>()

  constructor(
    registry: Registry,
    private readonly maxKeys = 500,
  ) {
    const registers = [registry]
    const flush = () => this.flushCounts()
    this.keyRequests = new Counter({
      name: 'helix_key_requests_total',
      help: 'Requests per API key id (key_id="other" beyond the cap; "none" for signed-in users) and model, by outcome (ok, error).',
      labelNames: ['key_id', 'model', 'outcome'] as const,
      registers,
      collect: flush,
    })
    this.keyItems = new Counter({
      name: 'helix_key_items_total',
      help: 'Items (batch rows) served per API key id and model.',
      labelNames: ['key_id', 'model'] as const,
      registers,
      collect: flush,
    })
    this.keyTokens = new Counter({
      name: 'helix_key_tokens_total',
      help: 'Text-model tokens per API key id and model, by kind (prompt, completion).',
      labelNames: ['key_id', 'model', 'kind'] as const,
      registers,
    })
    this.usersRegistered = new Counter({
      name: 'helix_users_registered_total',
      help: 'Accounts created since the daemon started, by how: self (POST /auth/register) or admin.',
      labelNames: ['via'] as const,
      registers,
    })
    this.logins = new Counter({
      name: 'helix_logins_total',
      help: 'Password sign-ins by outcome (ok, failed).',
      labelNames: ['outcome'] as const,
      registers,
    })
    this.keyEvents = new Counter({
      name: 'helix_api_keys_events_total',
      help: 'API keys created, revoked and rotated.',
      labelNames: ['event'] as const,
      registers,
    })
    this.rateLimitedTotal = new Counter({
      name: 'helix_rate_limited_total',
      help: 'Requests refused by a rate limit, by limit (per-ip, per-ip-auth, per-key, login-failures-per-account).',
      labelNames: ['limit'] as const,
      registers,
    })
    this.quotaRejections = new Counter({
      name: 'helix_quota_rejections_total',
      help: 'Requests refused because an API key used up its request or item quota.',
      registers,
    })
    this.quotaUsed = new Gauge({
      name: 'helix_quota_used_ratio',
      help: 'Share used of an API key quota (requests or items, the one checked last) in its current period, for keys with a quota.',
      labelNames: ['key_id'] as const,
      registers,
    })
    for (const outcome of ['ok', 'failed']) this.logins.inc({ outcome }, 0)
    for (const event of ['created', 'revoked', 'rotated']) this.keyEvents.inc({ event }, 0)
    this.usersRegistered.inc(0)
    this.quotaRejections.inc(0)
  }

  private keyLabel(keyId: string | null, known: Set<string> | Map<string, unknown>): string {
    if (keyId === null) return 'none'
    if (known.has(keyId) || known.size < this.maxKeys) return keyId
    return OTHER_KEYS
  }

  /**
   * The model label of a request. The name comes from the client (the URL or the body), so a name
   * becomes a label only once a request on it succeeded (the model exists), and at most MAX_MODELS of
   * them; failures on names never served, such as a flood of random ones, count as model="(other)".
   */
  private modelLabel(model: string | null, ok: boolean): string {
    if (model === null) return 'none'
    if (this.models.has(model)) return model
    if (!ok || this.models.size >= MAX_MODELS) return OTHER_MODELS
    this.models.add(model)
    return model
  }

  /** One answered request of a key (or a signed-in user: key_id="none") on a model. */
  request(keyId: string | null, model: string | null, ok: boolean, items: number): void {
    const key = this.keyLabel(keyId, this.children)
    let byModel = this.children.get(key)
    if (!byModel) {
      byModel = new Map()
      this.children.set(key, byModel)
    }
    const modelLabel = this.modelLabel(model, ok)
    let c = byModel.get(modelLabel)
    if (!c) {
      c = { key, model: modelLabel, ok: 0, error: 0, items: 0 }
      byModel.set(modelLabel, c)
    }
    if (ok) {
      c.ok += 1
      c.items += items
    } else c.error += 1
  }

  /** Adds the counts since the last collection to the per-key counters (before either is read). */
  private flushCounts(): void {
    for (const byModel of this.children.values()) {
      for (const c of byModel.values()) {
        if (c.ok > 0) this.keyRequests.inc({ key_id: c.key, model: c.model, outcome: 'ok' }, c.ok)
        if (c.error > 0) this.keyRequests.inc({ key_id: c.key, model: c.model, outcome: 'error' }, c.error)
        if (c.items > 0) this.keyItems.inc({ key_id: c.key, model: c.model }, c.items)
        c.ok = 0
        c.error = 0
        c.items = 0
      }
    }
  }

  /**
   * Tokens a key's text request read or generated (HelixMetrics.onTextTokens). The model served the
   * request, and key ids fold into key_id="other" past the cap as the request series do.
   */
  tokens(keyId: string | null, model: string, kind: 'prompt' | 'completion', count: number): void {
    const key = this.keyLabel(keyId, this.children)
    if (!this.children.has(key)) this.children.set(key, new Map())
    this.keyTokens.inc({ key_id: key, model: this.modelLabel(model, true), kind }, count)
  }

  /** An audited identity action (user.create, auth.login, apikey.revoke, ...). */
  event(action: string): void {
    const counted: Record<string, () => void> = {
      'user.register': () => this.usersRegistered.inc({ via: 'self' }),
      'user.create': () => this.usersRegistered.inc({ via: 'admin' }),
      'auth.login': () => this.logins.inc({ outcome: 'ok' }),
      'auth.login_failed': () => this.logins.inc({ outcome: 'failed' }),
      'apikey.create': () => this.keyEvents.inc({ event: 'created' }),
      'apikey.revoke': () => this.keyEvents.inc({ event: 'revoked' }),
      'apikey.rotate': () => this.keyEvents.inc({ event: 'rotated' }),
    }
    if (Object.hasOwn(counted, action)) counted[action]()
  }

  /** One rate-limiter decision: refusals counted by limit, quota checks kept as a used ratio. */
  decision(key: string, policy: RateLimitPolicy, decision: RateLimitDecision): void {
    // Admitted uncounted while the limiter's store was down: nothing was used or refused.
    if (decision.unchecked) return
    const quota = policy.name.startsWith('quota-')
    if (!decision.allowed) {
      if (quota) this.quotaRejections.inc()
      else this.rateLimitedTotal.inc({ limit: policy.name })
    }
    if (!quota || !key.startsWith('key:')) return
    // Quota keys are key:<id>:<period start>[:items].
    const keyId = key.slice(4, key.indexOf(':', 4))
    const label = this.keyLabel(keyId, this.quotaKeys)
    this.quotaKeys.add(label)
    const used = policy.limit > 0 ? Math.min(1, (policy.limit - decision.remaining) / policy.limit) : 0
    this.quotaUsed.set({ key_id: label }, used)
  }

  /** A limiter that reports each decision here and otherwise is `limiter`. */
  observe(limiter: RateLimiter): RateLimiter {
    return {
      // A reaction on the limiter's promise, not an async function: one promise less per check.
      check: (key, policy, cost) =>
        limiter.check(key, policy, cost).then((decision) => {
          this.decision(key, policy, decision)
          return decision
        }),
      close: () => limiter.close(),
    }
  }

  /** Counts what the identity layer records: usage per request, audited actions, limiter decisions. */
  attach(identity: Identity): void {
    identity.limiter = this.observe(identity.limiter)
    identity.deps.limiter = identity.limiter
    identity.deps.events = (action) => this.event(action)
    identity.recorder.observer = (entry) =>
      this.request(entry.apiKeyId ?? null, entry.model ?? null, entry.status < 400, entry.items ?? 0)
  }
}
