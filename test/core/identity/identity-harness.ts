import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll } from 'vitest'
import { createIdentity, type Identity } from '../../../src/core/identity/identity.js'
import type { Mailer } from '../../../src/core/identity/mail/mailer.js'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import type { RateLimiter } from '../../../src/core/limits/limiter.js'
import { buildApp, REDACTED_PATHS } from '../../../src/http/app.js'
import { httpAuthentication } from '../../../src/http/identity.js'
import { ensureJwtKeys } from '../../../src/provision/jwt/jwt-keys.js'
import { type HelixConfig, parseConfig } from '../../../src/shared/config.js'
import { migrate } from '../../../src/state/db/migrator.js'
import { type DatabasePool, openDatabase } from '../../../src/state/db/pool.js'
import { addModel, addToRepository } from '../../helpers/onnx-models.js'
import { provisionDatabase, type TestDatabase } from '../../state/db/database-targets.js'

/** One embedded PostgreSQL (migrated) and JWT keys for a test file. */
export interface IdentityWorld {
  database: TestDatabase
  db: DatabasePool
  config: HelixConfig
  teardown(): Promise<void>
}

export async function identityWorld(): Promise<IdentityWorld> {
  const database = await provisionDatabase('embedded')
  const db = await openDatabase(database.target, database.config.database)
  await migrate(db)
  await ensureJwtKeys(database.home, database.config)
  await addToRepository(database.home.modelsDir, 'add', addModel())
  await addToRepository(database.home.modelsDir, 'other', addModel())
  return {
    database,
    db,
    config: database.config,
    teardown: async () => {
      await db.close()
      await database.teardown()
    },
  }
}

/** Every log line the daemon writes, as text, for the "no secret in any log line" checks. */
export class LogCapture {
  readonly lines: string[] = []
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, next) => {
      this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean))
      next()
    },
  })
  text(): string {
    return this.lines.join('\n')
  }
}

export interface Daemon {
  app: FastifyInstance
  identity: Identity
  service: HelixModelService
  logs: LogCapture
  close(): Promise<void>
}

/** A real daemon (buildApp with the identity layer) over the world's database and model repository. */
export async function daemon(
  world: IdentityWorld,
  overrides: Record<string, unknown> = {},
  extra: { mailer?: Mailer; limiter?: RateLimiter; timeouts?: { headersMs: number; requestMs: number } } = {},
): Promise<Daemon> {
  // Test files make far more sign-in calls from 127.0.0.1 than the production per-IP default allows.
  const base = {
    ...structuredClone(world.config),
    rate_limit: { ...world.config.rate_limit, auth_per_ip_per_min: 10_000 },
  }
  const config = parseConfig({ ...base, ...overrides })
  const logs = new LogCapture()
  const service = await createModelService({
    repositoryDir: world.database.home.modelsDir,
    defaultDevice: 'cpu',
  })
  const identity = await createIdentity({
    home: world.database.home,
    config,
    db: world.db,
    usageFlushMs: 50,
    ...(extra.mailer ? { mailer: extra.mailer } : {}),
    ...(extra.limiter ? { limiter: extra.limiter } : {}),
  })
  const app = await buildApp({
    service,
    ...(extra.timeouts ? { timeouts: extra.timeouts } : {}),
    auth: httpAuthentication(identity),
    // Every request's line, so the "no secret in any log line" checks see them all.
    requestLog: { mode: 'all', sampleRate: 1 },
    logger: {
      level: 'trace',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      stream: logs.stream,
    } as never,
  })
  identity.deps.log = app.log
  await app.ready()
  return {
    app,
    identity,
    service,
    logs,
    close: async () => {
      await app.close()
      await identity.close()
      await service.close()
    },
  }
}

export const INFER_BODY = {
  inputs: [
    { name: 'a', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] },
    { name: 'b', shape: [1, 4], datatype: 'FP32', data: [10, 20, 30, 40] },
  ],
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` }
}

/**
 * One world and one daemon for a describe block: beforeAll builds them (with these config overrides),
 * afterAll tears them down. Read them as `suite.world` and `suite.d` inside hooks and tests.
 */
export function identitySuite(overrides: Record<string, unknown> = {}): { world: IdentityWorld; d: Daemon } {
  const suite = {} as { world: IdentityWorld; d: Daemon }
  beforeAll(async () => {
    suite.world = await identityWorld()
    suite.d = await daemon(suite.world, overrides)
  })
  afterAll(async () => {
    await suite.d?.close()
    await suite.world?.teardown()
  })
  return suite
}
