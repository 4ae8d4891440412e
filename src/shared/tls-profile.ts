import { constants } from 'node:crypto'

/**
 * Mozilla's "intermediate" TLS profile (ssl-config.mozilla.org), used by every face of the daemon:
 * TLS 1.2 and 1.3, these TLS 1.2 suites, the client's order.
 */
export const INTERMEDIATE_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')

export const MIN_TLS_VERSION = 'TLSv1.2'

/**
 * No session tickets, as the profile has it (ssl_session_tickets off in the rendered nginx.conf): Node
 * encrypts every ticket with one key made at start and never rotated, so whoever obtains that key
 * can decrypt every recorded TLS 1.2 session of the process's life, which forward secrecy rules out.
 */
export const TLS_SECURE_OPTIONS = constants.SSL_OP_NO_TICKET
