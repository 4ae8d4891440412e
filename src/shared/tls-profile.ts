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
