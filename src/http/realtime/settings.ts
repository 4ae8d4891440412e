import type { HelixConfig } from '../../shared/config.js'

/** The limits and timers of GET /v1/realtime, resolved from helix.yaml's `realtime:` section. */
export interface RealtimeSettings {
  /** How long a new socket has to send its auth frame. */
  authTimeoutMs: number
  /** Interval of the daemon's WebSocket pings; a socket that missed the last one is closed. */
  heartbeatMs: number
  /** How long a dropped session's unfinished requests keep running, waiting for a resume. */
  resumeGraceMs: number
  /** How often a connected credential is checked again (revocation, expiry). */
  credentialCheckMs: number
  /** Largest frame a client may send (larger ones close the socket with 1009). */
  maxMessageBytes: number
  /** Unfinished requests one session may have. */
  maxRequestsPerSocket: number
  /** Open sockets per API key or user (and as many dropped sessions waiting for a resume). */
  maxSocketsPerPrincipal: number
  /** Frames stop going to the socket while this much is buffered in it (until it drains). */
  sendHighWaterBytes: number
  /** A client that lets this much queue up unread is closed (4008). */
  maxSendQueueBytes: number
  /** Frames kept for a resume (sent but not acknowledged) per session. */
  resumeBufferBytes: number
}

/**
 * Buffered bytes past which frames wait: a few frames of a token stream, so a slow reader's frames
 * queue (and count against its limit) in the session rather than in the kernel and Node's socket.
 */
const SEND_HIGH_WATER_BYTES = 256 * 1024

export function realtimeSettings(config: HelixConfig['realtime']): RealtimeSettings {
  return {
    authTimeoutMs: config.auth_timeout_s * 1000,
    heartbeatMs: config.heartbeat_s * 1000,
    resumeGraceMs: config.resume_grace_s * 1000,
    credentialCheckMs: config.credential_check_s * 1000,
    maxMessageBytes: config.max_message_bytes,
    maxRequestsPerSocket: config.max_requests_per_socket,
    maxSocketsPerPrincipal: config.max_sockets_per_principal,
    sendHighWaterBytes: SEND_HIGH_WATER_BYTES,
    maxSendQueueBytes: config.max_send_queue_bytes,
    resumeBufferBytes: config.resume_buffer_bytes,
  }
}

/** The defaults of helix.yaml, for apps built without a config (tests of the routes). */
export const DEFAULT_REALTIME_SETTINGS: RealtimeSettings = {
  authTimeoutMs: 10_000,
  heartbeatMs: 20_000,
  resumeGraceMs: 30_000,
  credentialCheckMs: 30_000,
  maxMessageBytes: 16 * 1024 * 1024,
  maxRequestsPerSocket: 64,
  maxSocketsPerPrincipal: 32,
  sendHighWaterBytes: SEND_HIGH_WATER_BYTES,
  maxSendQueueBytes: 16 * 1024 * 1024,
  resumeBufferBytes: 8 * 1024 * 1024,
}
