/**
 * Every error code Helix uses, each with the kind of failure it is. Protocols map kinds, never codes:
 * the REST face in one table (http/plugins/errors.ts), and each later face (gRPC) in one table of its
 * own, both typed Record<ErrorKind, …> so that a new kind cannot be left unmapped. A code missing here
 * fails to compile where it is thrown.
 */
export type ErrorKind =
  /** The caller's input or usage is wrong (400; CLI exit 2). */
  | 'invalid_input'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  /** The thing exists already (409). */
  | 'conflict'
  | 'too_large'
  | 'unsupported_media_type'
  /** The caller sends too much: per-key or per-IP limits and quotas. */
  | 'rate_limited'
  /** The server is at capacity: a model's queue is full. */
  | 'overloaded'
  | 'cancelled'
  /** Not ready yet or any more (loading, unloading, a dependency that is down). */
  | 'unavailable'
  | 'timeout'
  /** A model failed to run or load; the message is safe to show. */
  | 'model_failed'
  /** A service helix depends on answered with an error (SMTP). */
  | 'dependency_failed'
  /** Anything else: the environment or a bug; the message stays in the log. */
  | 'internal'

export const ERROR_KINDS = {
  INVALID_INPUT: 'invalid_input',
  MALFORMED_JSON: 'invalid_input',
  UNAUTHENTICATED: 'unauthenticated',
  FORBIDDEN: 'forbidden',
  MODEL_NOT_FOUND: 'not_found',
  // A text route asked a model of another task (an embeddings model for chat, a tensor model for text).
  MODEL_WRONG_TASK: 'invalid_input',
  // A prompt (plus the asked completion) longer than the model's context.
  CONTEXT_TOO_LONG: 'invalid_input',
  VERSION_NOT_FOUND: 'not_found',
  NOT_FOUND: 'not_found',
  // Usage, audit and rate-limit reads with authentication off: no identity layer keeps them, as the
  // REST /auth routes are absent then (404).
  AUTH_DISABLED: 'not_found',
  USER_EXISTS: 'conflict',
  // WebSocket streaming (/v1/realtime): a request id the session already uses; more requests in flight
  // than realtime.max_requests_per_socket; a resume naming no live session (unknown, expired, a wrong
  // token or another principal all read the same); frames a resume asked for that are no longer held.
  REQUEST_ID_IN_USE: 'conflict',
  TOO_MANY_IN_FLIGHT: 'rate_limited',
  SESSION_NOT_FOUND: 'not_found',
  RESUME_GAP: 'conflict',
  // The realtime client lost its connection and could not resume its session.
  CONNECTION_LOST: 'unavailable',
  BODY_TOO_LARGE: 'too_large',
  UNSUPPORTED_MEDIA_TYPE: 'unsupported_media_type',
  RATE_LIMITED: 'rate_limited',
  QUEUE_FULL: 'overloaded',
  CANCELLED: 'cancelled',
  MODEL_NOT_READY: 'unavailable',
  // A request was running on an onnxruntime worker thread that exited or hung; the instance reopens.
  MODEL_INSTANCE_CRASHED: 'unavailable',
  RATE_LIMITER_UNAVAILABLE: 'unavailable',
  // The daemon's database does not answer (stopped, restarting, unreachable): a request that must read
  // or write it (sign-in, registration, key changes, an uncached API key) is refused until it is back.
  DATABASE_UNAVAILABLE: 'unavailable',
  INFER_TIMEOUT: 'timeout',
  BACKEND_FAILED: 'model_failed',
  MODEL_LOAD_FAILED: 'model_failed',
  MAIL_FAILED: 'dependency_failed',
  INTERNAL: 'internal',
  // `helix certs verify` exits 1 with the first failed check's code.
  CERT_EXPIRED: 'internal',
  CERT_HOST_MISMATCH: 'internal',
  CERT_KEY_MISSING: 'internal',
  CERT_MISSING: 'internal',
  CERT_NOT_YET_VALID: 'internal',
  CERT_UNTRUSTED: 'internal',
  CERT_WRONG_PURPOSE: 'internal',
  // CLI and provisioning codes: a UserError's code is bad input, a Failure's is internal.
  BACKUP_CORRUPT: 'internal',
  BACKUP_DECRYPT_FAILED: 'invalid_input',
  BACKUP_EXISTS: 'invalid_input',
  BACKUP_INCOMPATIBLE: 'internal',
  BACKUP_INVALID: 'invalid_input',
  BACKUP_NOT_FOUND: 'invalid_input',
  BACKUP_TRUNCATED: 'internal',
  BACKUP_VERIFY_FAILED: 'internal',
  // `helix audit verify`: an audit entry was changed, removed or slipped in.
  AUDIT_CHAIN_BROKEN: 'internal',
  // alerts.* of helix.yaml: a bad URL, a secret file that is missing, two ways of giving one secret.
  ALERTS_CONFIG_INVALID: 'invalid_input',
  // `helix monitor up|status|down`: Prometheus or Alertmanager is not installed, did not start, or does not answer.
  MONITOR_TOOL_MISSING: 'invalid_input',
  MONITOR_START_FAILED: 'internal',
  MONITOR_UNREACHABLE: 'dependency_failed',
  // The server answered a benchmark probe with outputs that do not match the model (gRPC targets).
  BENCH_BAD_ANSWER: 'internal',
  BENCH_BAD_FLAG: 'invalid_input',
  BENCH_BAD_INPUT: 'invalid_input',
  BENCH_BAD_REQUEST: 'invalid_input',
  BENCH_BAD_SHAPE: 'invalid_input',
  BENCH_BAD_URL: 'invalid_input',
  BENCH_BASELINE_INVALID: 'invalid_input',
  BENCH_BASELINE_UNREADABLE: 'invalid_input',
  BENCH_INPUT_INVALID: 'invalid_input',
  BENCH_INPUT_UNREADABLE: 'invalid_input',
  BENCH_MODEL_DIR_MISSING: 'invalid_input',
  BENCH_MODEL_DIR_REQUIRED: 'invalid_input',
  BENCH_MODEL_REQUIRED: 'invalid_input',
  BENCH_NOT_FOUND: 'invalid_input',
  // --url answers, but not as a gRPC server (the REST port, or TLS on one side only).
  BENCH_NOT_GRPC: 'invalid_input',
  BENCH_REGRESSION: 'internal',
  BENCH_SERVER_ERROR: 'internal',
  BENCH_SHAPE_REQUIRED: 'invalid_input',
  BENCH_TLS_CLIENT_PAIR: 'invalid_input',
  BENCH_TLS_FILE_INVALID: 'invalid_input',
  BENCH_TLS_FILE_MISSING: 'invalid_input',
  BENCH_TLS_WITHOUT_HTTPS: 'invalid_input',
  BENCH_TUNE_LOAD_FAILED: 'internal',
  BENCH_TUNE_NOT_APPLIED: 'internal',
  BENCH_TUNE_NOT_READY: 'internal',
  BENCH_TUNE_UNSUPPORTED: 'invalid_input',
  BENCH_UNAUTHORIZED: 'invalid_input',
  BENCH_UNREACHABLE: 'internal',
  BENCH_URL_REQUIRED: 'invalid_input',
  CA_INCOMPLETE: 'invalid_input',
  CA_KEY_MISSING: 'invalid_input',
  CA_MISSING: 'invalid_input',
  CERT_CORRUPT: 'invalid_input',
  CERT_DAYS_INVALID: 'invalid_input',
  CERT_KEY_CORRUPT: 'invalid_input',
  CERT_KEY_MISMATCH: 'invalid_input',
  CERT_KEY_UNSUPPORTED: 'invalid_input',
  CERT_NAME_INVALID: 'invalid_input',
  CERT_UNREADABLE: 'invalid_input',
  CONFIG_INVALID: 'invalid_input',
  CONFIRMATION_REQUIRED: 'invalid_input',
  DAEMON_REFUSED: 'internal',
  DAEMON_UNREACHABLE: 'internal',
  DB_BINARIES_COPY_FAILED: 'internal',
  DB_BINARIES_MISSING: 'internal',
  DB_BUSY: 'internal',
  DB_CA_FILE: 'invalid_input',
  DB_DATA_INVALID: 'internal',
  DB_DIR_NOT_ACCESSIBLE: 'invalid_input',
  DB_EXTERNAL: 'invalid_input',
  DB_INIT_FAILED: 'internal',
  DB_NOT_EMPTY: 'invalid_input',
  DB_NOT_MIGRATED: 'invalid_input',
  DB_NOT_STARTED: 'internal',
  DB_OS_USER: 'internal',
  DB_START_FAILED: 'internal',
  DB_STATE_INVALID: 'internal',
  DB_STOP_FAILED: 'internal',
  DB_UNREACHABLE: 'internal',
  DB_URL_INVALID: 'invalid_input',
  DISK_FULL: 'internal',
  ADDRESS_IN_USE: 'internal',
  EMAIL_INVALID: 'invalid_input',
  INVALID_ALLOW: 'invalid_input',
  INVALID_EMAIL: 'invalid_input',
  INVALID_MODEL_NAME: 'invalid_input',
  INVALID_NAME: 'invalid_input',
  INVALID_TOKEN: 'invalid_input',
  INVALID_UPSTREAM: 'invalid_input',
  INVALID_VERSION: 'invalid_input',
  KEYS_CORRUPT: 'invalid_input',
  KEYS_EXIST: 'invalid_input',
  KEYS_MISSING: 'internal',
  MIGRATIONS_MISSING: 'internal',
  MIGRATION_DRIFT: 'internal',
  MIGRATION_FAILED: 'internal',
  MIGRATION_INVALID: 'internal',
  MODEL_FILE_NOT_FOUND: 'invalid_input',
  MODEL_INVALID: 'invalid_input',
  NOT_INITIALISED: 'invalid_input',
  NOT_WRITABLE: 'invalid_input',
  P12_PASSWORD_INVALID: 'invalid_input',
  PASSPHRASE_MISMATCH: 'invalid_input',
  PASSPHRASE_REQUIRED: 'invalid_input',
  PASSPHRASE_TOO_SHORT: 'invalid_input',
  PASSWORD_COMMON: 'invalid_input',
  PASSWORD_TOO_LONG: 'invalid_input',
  PASSWORD_TOO_SHORT: 'invalid_input',
  SCOPE_INVALID: 'invalid_input',
  TLS_FILES_MISSING: 'invalid_input',
  USAGE: 'invalid_input',
  VERSION_EXISTS: 'invalid_input',
} as const satisfies Record<string, ErrorKind>

export type ErrorCode = keyof typeof ERROR_KINDS
