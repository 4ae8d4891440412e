import { readFile, rm } from 'node:fs/promises'
import { type Static, Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { PRIVATE_MODE, writeFileAtomic } from '../shared/atomic-write.js'
import type { HelixConfig } from '../shared/config.js'
import type { HelixHome } from '../shared/home.js'
import { processAlive } from '../shared/process-alive.js'

/**
 * What a listening daemon records in <dir>/data/daemon.json, so `helix status`, `doctor`, `models`
 * and `bench` find it wherever it listens (`helix up --port 18080`, `helix serve --port 0`) instead
 * of assuming the address of helix.yaml. Removed on a clean shutdown; a record whose process is gone
 * (a crash, a kill -9) is stale and ignored.
 */
export const DaemonRecordSchema = Type.Object({
  /** Process id of the daemon. */
  pid: Type.Integer({ minimum: 1 }),
  /** Where clients reach it: the bound port, with a wildcard host (0.0.0.0, ::) shown as loopback. */
  url: Type.String(),
  /** Address and port actually bound (the real port when 0 was asked). */
  host: Type.String(),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  /** HTTPS, and whether client certificates are required. */
  tls: Type.Boolean(),
  mtls: Type.Boolean(),
  /** Whether callers must authenticate (false: started with --no-auth or auth.enabled: false). */
  auth: Type.Optional(Type.Boolean()),
  /** ISO 8601 time the daemon started listening. */
  started_at: Type.String(),
  /** helix version of the daemon. */
  version: Type.String(),
  /** The gRPC face, when it serves one: host:port as clients dial it, the bound port, and TLS. */
  grpc: Type.Optional(
    Type.Object({
      target: Type.String(),
      port: Type.Integer({ minimum: 1, maximum: 65535 }),
      tls: Type.Boolean(),
    }),
  ),
})
export type DaemonRecord = Static<typeof DaemonRecordSchema>

export function daemonRecordFile(home: HelixHome): string {
  return home.path('data', 'daemon.json')
}

/** Records this process as the helix directory's running daemon (0600: it names a local process). */
export async function writeDaemonRecord(home: HelixHome, record: DaemonRecord): Promise<void> {
  await writeFileAtomic(daemonRecordFile(home), `${JSON.stringify(record, null, 2)}\n`, PRIVATE_MODE)
}

async function readRecordFile(home: HelixHome): Promise<DaemonRecord | undefined> {
  const text = await readFile(daemonRecordFile(home), 'utf8').catch(() => undefined)
  if (text === undefined) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return undefined
  }
  // A damaged or foreign file tells nothing about a daemon: the configured address applies.
  return Value.Check(DaemonRecordSchema, parsed) ? parsed : undefined
}

/**
 * Removes the record on shutdown, but only while it still names `pid`: a second daemon started in
 * the same helix directory has replaced it and keeps it.
 */
export async function removeDaemonRecord(home: HelixHome, pid: number = process.pid): Promise<void> {
  const record = await readRecordFile(home)
  if (record?.pid === pid) await rm(daemonRecordFile(home), { force: true })
}

/** The record of the daemon running on this helix directory; undefined when none is, or it is stale. */
export async function readDaemonRecord(home: HelixHome): Promise<DaemonRecord | undefined> {
  const record = await readRecordFile(home)
  return record && processAlive(record.pid) ? record : undefined
}

/** Which daemon a CLI command talks to, and how that address was found. */
export interface DaemonTarget {
  url: string
  /** flag: --url; record: data/daemon.json of a running daemon; config: helix.yaml server.*. */
  source: 'flag' | 'record' | 'config'
  /** The daemon's pid, when the record named it. */
  pid?: number
  /** Whether the daemon asks for a client certificate. */
  mtls: boolean
}

/**
 * The daemon address every command uses: an explicit --url wins, then the record of the daemon
 * running on this helix directory, then server.host/port/tls of helix.yaml.
 */
export async function locateDaemon(
  home: HelixHome,
  config: HelixConfig,
  explicitUrl?: string,
): Promise<DaemonTarget> {
  const mtls = config.server.mtls
  if (explicitUrl !== undefined) return { url: explicitUrl.replace(/\/+$/, ''), source: 'flag', mtls }
  const record = await readDaemonRecord(home)
  if (record) return { url: record.url, source: 'record', pid: record.pid, mtls: record.mtls }
  return { url: daemonUrl(config.server), source: 'config', mtls }
}

/** The daemon URL helix.yaml describes (server.host/port, https when server.tls). */
export function daemonUrl(server: { host: string; port: number; tls: boolean; mtls?: boolean }): string {
  const host = server.host === '0.0.0.0' || server.host === '::' ? '127.0.0.1' : server.host
  const shown = host.includes(':') ? `[${host}]` : host
  return `${server.tls || server.mtls ? 'https' : 'http'}://${shown}:${server.port}`
}
