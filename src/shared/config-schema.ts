import { type Static, Type } from '@sinclair/typebox'

/**
 * helix.yaml, the one settings file of a helix directory. Each field carries a one-line doc; defaults
 * apply to anything left out, so an empty file is valid. Env vars (HELIX_*, DATABASE_URL, REDIS_URL)
 * override the file; flags override both (see loadConfig).
 */
const Hostname = Type.String({
  pattern:
    '^(?=.{1,253}$)(\\*\\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$',
})

export const KeyTypeSchema = Type.Union([Type.Literal('ecdsa'), Type.Literal('rsa')])
export type KeyType = Static<typeof KeyTypeSchema>

export const JwtAlgorithmSchema = Type.Union([
  Type.Literal('EdDSA'),
  Type.Literal('ES256'),
  Type.Literal('RS256'),
])
export type JwtAlgorithm = Static<typeof JwtAlgorithmSchema>

export const LogFormatSchema = Type.Union(
  [Type.Literal('auto'), Type.Literal('pretty'), Type.Literal('json')],
  { default: 'auto' },
)
export type LogFormat = Static<typeof LogFormatSchema>

export const RequestLogSchema = Type.Union(
  [Type.Literal('off'), Type.Literal('errors'), Type.Literal('sample'), Type.Literal('all')],
  { default: 'errors' },
)
export type RequestLogMode = Static<typeof RequestLogSchema>

/** rate_limit.on_store_error: admit uncounted (fail-open) or refuse with 503 (fail-closed). */
const StoreErrorMode = (fallback: 'fail-open' | 'fail-closed') =>
  Type.Union([Type.Literal('fail-open'), Type.Literal('fail-closed')], { default: fallback })
export type StoreErrorMode = 'fail-open' | 'fail-closed'

export const HelixConfigSchema = Type.Object(
  {
    /** Public DNS name of the service; goes into the server certificate and nginx server_name. */
    domain: Type.String({ default: 'localhost' }),
    /** Extra subject alternative names (DNS names or IP addresses) for the server certificate. */
    sans: Type.Array(Type.String(), { default: [] }),
    /** E-mail of the first administrator (used by `helix up` and alert routing). */
    admin_email: Type.String({ default: 'admin@localhost' }),
    tls: Type.Object(
      {
        /** Key algorithm for the CA and leaves: ecdsa (P-256) or rsa (CA 3072, leaves 2048 bits). */
        key_type: Type.Optional(KeyTypeSchema),
        /** Validity of server certificates in days (browsers cap at 398; 90 is the norm). */
        server_days: Type.Integer({ minimum: 1, maximum: 397, default: 90 }),
        /** Validity of client certificates in days. */
        client_days: Type.Integer({ minimum: 1, maximum: 397, default: 90 }),
        /** Validity of the CA in years. */
        ca_years: Type.Integer({ minimum: 1, maximum: 30, default: 10 }),
        /** Warn in `certs list` / `doctor` when a certificate has fewer days left than this. */
        warn_days: Type.Integer({ minimum: 1, default: 30 }),
      },
      { default: {} },
    ),
    jwt: Type.Object(
      {
        /** Signing algorithm of new JWT keys: EdDSA (Ed25519), ES256 or RS256. */
        algorithm: Type.Optional(JwtAlgorithmSchema),
        /** Days a rotated-out key stays in the JWKS so tokens signed before rotation still verify. */
        overlap_days: Type.Number({ minimum: 0, default: 1 }),
        /** Recommended rotation interval in days (`doctor` warns when the current key is older). */
        rotate_after_days: Type.Number({ minimum: 1, default: 90 }),
        /** Issuer (`iss`) of access tokens. */
        issuer: Type.String({ default: 'helix' }),
        /** Audience (`aud`) of access tokens. */
        audience: Type.String({ default: 'helix-api' }),
        /** Lifetime of access tokens in seconds. */
        access_ttl_s: Type.Integer({ minimum: 60, default: 900 }),
      },
      { default: {} },
    ),
    server: Type.Object(
      {
        /** Address the daemon listens on. */
        host: Type.String({ default: '127.0.0.1' }),
        /** Port the daemon listens on. */
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
        /** Serve HTTPS with certs/server.crt. */
        tls: Type.Boolean({ default: false }),
        /** Require client certificates signed by the helix CA (implies tls). */
        mtls: Type.Boolean({ default: false }),
        /** Largest request body in bytes. */
        body_limit: Type.Integer({ minimum: 1024, default: 64 * 1024 * 1024 }),
        /**
         * Seconds a client may take to send a request's headers, and the whole request: a slow client
         * (slowloris) is cut off instead of holding a connection open.
         */
        headers_timeout_s: Type.Integer({ minimum: 1, maximum: 3600, default: 20 }),
        request_timeout_s: Type.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
        /**
         * Proxies whose X-Forwarded-For is believed (addresses, CIDRs or loopback/linklocal/uniquelocal,
         * e.g. the nginx host; env HELIX_TRUST_PROXY), so per-IP
         * rate limits and audit entries see the real client; empty: the socket's address is used.
         */
        trust_proxy: Type.Array(Type.String(), { default: [] }),
        /**
         * Seconds a draining daemon keeps its idle keep-alive connections open, so a proxy retires them
         * itself (the generated nginx closes upstream connections idle for 4 s) instead of sending a
         * request on one just as the daemon closes it: a POST lost that way is not resent. A request
         * arriving meanwhile is served with Connection: close. Unset: 5 behind a proxy (trust_proxy
         * set), 0 (close them at once) otherwise.
         */
        drain_idle_grace_s: Type.Optional(Type.Integer({ minimum: 0, maximum: 300 })),
        /** Also serve GET /metrics on 127.0.0.1 at this port, without credentials (for a local Prometheus); unset: none. Flag --metrics-port. */
        metrics_port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
        /** The gRPC face (KServe GRPCInferenceService, health, reflection) on its own port. */
        grpc: Type.Object(
          {
            /** Serve gRPC next to REST (--no-grpc turns it off). */
            enabled: Type.Boolean({ default: true }),
            /**
             * Port of the gRPC face; unset: the REST port + 1 (8081 next to 8080), or 0 (any free port)
             * when the REST port is 0. Env HELIX_GRPC_PORT, flag --grpc-port.
             */
            port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
            /** Largest gRPC message received or sent, in bytes (raw tensors travel in one message). */
            max_message_bytes: Type.Integer({ minimum: 4096, default: 64 * 1024 * 1024 }),
          },
          { default: {} },
        ),
      },
      { default: {} },
    ),
    /** WebSocket streaming at GET /v1/realtime (docs/realtime.md). */
    realtime: Type.Object(
      {
        /** Seconds a new socket has to send its auth frame before it is closed (4401). */
        auth_timeout_s: Type.Number({ exclusiveMinimum: 0, default: 10 }),
        /** Seconds between the daemon's pings; a socket that did not answer the last one is closed. */
        heartbeat_s: Type.Number({ exclusiveMinimum: 0, default: 20 }),
        /** Seconds a dropped session's unfinished requests keep running, their frames kept for a resume. */
        resume_grace_s: Type.Number({ minimum: 0, default: 30 }),
        /** Seconds between checks that a connected credential is neither revoked nor expired. */
        credential_check_s: Type.Number({ exclusiveMinimum: 0, default: 30 }),
        /** Largest frame a client may send, in bytes (larger ones close the socket with 1009). */
        max_message_bytes: Type.Integer({ minimum: 1024, default: 16 * 1024 * 1024 }),
        /** Unfinished requests one socket (session) may have. */
        max_requests_per_socket: Type.Integer({ minimum: 1, default: 64 }),
        /** Open sockets per API key or user. */
        max_sockets_per_principal: Type.Integer({ minimum: 1, default: 32 }),
        /** Bytes a client may leave unread before it is closed as a slow consumer (4008). */
        max_send_queue_bytes: Type.Integer({ minimum: 65_536, default: 16 * 1024 * 1024 }),
        /** Bytes of sent but unacknowledged frames kept per session for a resume. */
        resume_buffer_bytes: Type.Integer({ minimum: 65_536, default: 8 * 1024 * 1024 }),
      },
      { default: {} },
    ),
    logging: Type.Object(
      {
        /** Log lines of serve/up: pretty (one human line each), json, or auto (pretty on a terminal); env HELIX_LOG_FORMAT. */
        format: LogFormatSchema,
        /** One line per answered request: off (5xx only), errors (4xx and 5xx), sample (errors + sample_rate of the rest), all. */
        requests: RequestLogSchema,
        /** Share (0 to 1) of the other requests logged under requests: sample. */
        sample_rate: Type.Number({ minimum: 0, maximum: 1, default: 0.01 }),
      },
      { default: {} },
    ),
    tracing: Type.Object(
      {
        /** Export OpenTelemetry spans (one per request; auth, queue, batch and compute children) over OTLP/HTTP. */
        enabled: Type.Boolean({ default: false }),
        /** OTLP/HTTP traces endpoint of a collector (JSON is sent). */
        endpoint: Type.String({ pattern: '^https?://[^\\s]+$', default: 'http://127.0.0.1:4318/v1/traces' }),
        /** Share (0 to 1) of new traces sampled; a caller's traceparent decides for its own trace (parent-based). */
        sampling_ratio: Type.Number({ minimum: 0, maximum: 1, default: 1 }),
        /** service.name of the exported spans. */
        service_name: Type.String({ minLength: 1, default: 'helix' }),
        /** Extra HTTP headers sent with every export (e.g. a collector's API key); never logged. */
        headers: Type.Optional(Type.Record(Type.String(), Type.String())),
      },
      { default: {}, additionalProperties: false },
    ),
    nginx: Type.Object(
      {
        /** Daemon instances nginx balances over (host:port). */
        upstreams: Type.Array(Type.String(), { default: ['127.0.0.1:8080'] }),
        /** Ports nginx listens on for HTTP (redirect) and HTTPS. */
        http_port: Type.Integer({ minimum: 1, maximum: 65535, default: 80 }),
        https_port: Type.Integer({ minimum: 1, maximum: 65535, default: 443 }),
        /** Port nginx listens on for gRPC (HTTP/2 over TLS), proxied to the daemons' gRPC face. */
        grpc_port: Type.Integer({ minimum: 1, maximum: 65535, default: 8444 }),
        /**
         * Daemon gRPC addresses (host:port) nginx balances over; unset: each upstream's host with its
         * gRPC port (server.grpc.port, else the upstream's port + 1).
         */
        grpc_upstreams: Type.Optional(Type.Array(Type.String())),
        /** Also listen on IPv6 ([::]:port); off by default because hosts and containers without IPv6 then fail to start. */
        ipv6: Type.Boolean({ default: false }),
        /** Require client certificates at nginx (mTLS). */
        mtls: Type.Boolean({ default: false }),
        /** Networks allowed to scrape /metrics through nginx. */
        metrics_allow: Type.Array(Type.String(), { default: ['127.0.0.1', '::1'] }),
        /** Requests per second allowed per client IP, and per API key. */
        rate_per_ip: Type.Integer({ minimum: 1, default: 50 }),
        rate_per_key: Type.Integer({ minimum: 1, default: 100 }),
        /** client_max_body_size, e.g. "64m". */
        max_body: Type.String({ default: '64m', pattern: '^[0-9]+[kKmMgG]?$' }),
      },
      { default: {} },
    ),
    database: Type.Object(
      {
        /** External PostgreSQL URL; leave empty for the embedded server (DATABASE_URL overrides). */
        url: Type.Optional(Type.String()),
        /** CA file for verify-full TLS to an external database. */
        ca_file: Type.Optional(Type.String()),
        /** Connection pool size. */
        pool_size: Type.Integer({ minimum: 1, default: 10 }),
        /** statement_timeout in milliseconds. */
        statement_timeout_ms: Type.Integer({ minimum: 0, default: 30000 }),
        /** Idle connections are closed after this many milliseconds. */
        idle_timeout_ms: Type.Integer({ minimum: 0, default: 30000 }),
        /** application_name reported to PostgreSQL. */
        application_name: Type.String({ default: 'helix' }),
        /** OS user the embedded server runs as when helix runs as root (default: helix-pg, created if missing). */
        os_user: Type.Optional(Type.String()),
      },
      { default: {} },
    ),
    redis: Type.Object(
      {
        /** Redis URL for shared rate limits and revocations (REDIS_URL overrides); empty: in-memory. */
        url: Type.Optional(Type.String()),
      },
      { default: {} },
    ),
    auth: Type.Object(
      {
        /** Require a credential on /v2, /v1 and admin routes; turn off only for local benchmarks. */
        enabled: Type.Boolean({ default: true }),
        /** Routes reachable without a credential (a trailing * matches any suffix). */
        public_routes: Type.Array(Type.String(), { default: ['/v2/health/*'] }),
        /** Let anyone create an account with POST /auth/register (off: only `helix users create`). */
        allow_registration: Type.Boolean({ default: true }),
        /** Refuse login until the e-mail address is verified. */
        require_email_verification: Type.Boolean({ default: false }),
        /** Lifetime of refresh tokens (one login session) in seconds; 30 days by default. */
        refresh_ttl_s: Type.Integer({ minimum: 300, default: 2_592_000 }),
        /** Lifetime of e-mail verification links in seconds (ASVS: at most 24 h). */
        verify_email_ttl_s: Type.Integer({ minimum: 600, maximum: 86_400, default: 86_400 }),
        /** Lifetime of password-reset tokens in seconds (10 minutes to 24 h). */
        reset_password_ttl_s: Type.Integer({ minimum: 600, maximum: 86_400, default: 1800 }),
        /** Shortest password accepted (ASVS floor 8; 15+ is encouraged). */
        password_min_length: Type.Integer({ minimum: 8, maximum: 128, default: 8 }),
        /** argon2id cost; never below OWASP's m=19456 KiB, t=2, p=1. */
        argon2: Type.Object(
          {
            memory_kib: Type.Integer({ minimum: 19456, default: 19456 }),
            time_cost: Type.Integer({ minimum: 2, default: 2 }),
            parallelism: Type.Integer({ minimum: 1, default: 1 }),
          },
          { default: {} },
        ),
        /**
         * Failed sign-ins one account (an e-mail, known or not) may have within login_throttle_s before
         * every further attempt on it is refused (429 with Retry-After) until that window ends, from any
         * address: online password guessing across many IPs.
         */
        login_max_failures: Type.Integer({ minimum: 1, default: 10 }),
        login_throttle_s: Type.Integer({ minimum: 1, default: 900 }),
        /** Seconds an API key's previous secret keeps working after a rotation (24 h by default). */
        api_key_grace_s: Type.Integer({ minimum: 0, default: 86_400 }),
        /** Origins allowed by CORS; empty means closed (no cross-origin browser calls). */
        cors_origins: Type.Array(Type.String(), { default: [] }),
        /** Days audit entries and request logs are kept before they are purged. */
        audit_retention_days: Type.Integer({ minimum: 1, default: 365 }),
        request_log_retention_days: Type.Integer({ minimum: 1, default: 90 }),
      },
      { default: {} },
    ),
    rate_limit: Type.Object(
      {
        /** Requests per minute per API key or user when the key sets no limit of its own. */
        per_key_per_min: Type.Integer({ minimum: 1, default: 6000 }),
        /** Requests per minute per client IP (all callers, signed in or not). */
        per_ip_per_min: Type.Integer({ minimum: 1, default: 6000 }),
        /** Requests per minute per client IP on /auth/login, /auth/register and /auth/password/*. */
        auth_per_ip_per_min: Type.Integer({ minimum: 1, default: 30 }),
        /**
         * What a request meets when the limiter's Redis does not answer: fail-open admits it uncounted,
         * fail-closed refuses it with 503 RATE_LIMITER_UNAVAILABLE.
         */
        on_store_error: Type.Object(
          {
            /** Per-IP and per-key requests-per-minute limits. */
            limits: StoreErrorMode('fail-open'),
            /** Request and item quotas of API keys. */
            quotas: StoreErrorMode('fail-closed'),
          },
          { default: {} },
        ),
      },
      { default: {} },
    ),
    mail: Type.Object(
      {
        /** SMTP server, e.g. smtps://user:pass@mail.example.com:465; empty: mail goes to the outbox table. */
        smtp_url: Type.Optional(Type.String()),
        /** Sender address of helix mail. */
        from: Type.String({ default: 'helix@localhost' }),
        /** Public base URL put in links of verification and reset mails. */
        public_url: Type.Optional(Type.String()),
      },
      { default: {} },
    ),
    alerts: Type.Object(
      {
        /** Addresses Alertmanager e-mails alerts to; empty: admin_email, unless Slack is set. */
        email: Type.Array(Type.String(), { default: [] }),
        /** SMTP relay Alertmanager sends alert mail through. */
        smtp: Type.Object(
          {
            /** host:port of the relay. */
            smarthost: Type.String({ default: 'localhost:25' }),
            /** Sender address; default alertmanager@<domain>. */
            from: Type.Optional(Type.String()),
            /** SMTP AUTH user name, with auth_password_file. */
            auth_username: Type.Optional(Type.String()),
            /** File holding the SMTP AUTH password (never copied into alertmanager.yml). */
            auth_password_file: Type.Optional(Type.String()),
            /** Require STARTTLS towards the relay. */
            require_tls: Type.Boolean({ default: true }),
          },
          { default: {} },
        ),
        /** Slack incoming-webhook URL (a secret: prefer slack_webhook_url_file). */
        slack_webhook_url: Type.Optional(Type.String()),
        /** File holding the Slack incoming-webhook URL; alertmanager.yml names the file (api_url_file). */
        slack_webhook_url_file: Type.Optional(Type.String()),
        /** Slack channel to post to (#alerts); default: the webhook's own channel. */
        slack_channel: Type.Optional(Type.String()),
        /** PagerDuty Events API v2 routing (integration) key (a secret: prefer pagerduty_routing_key_file). */
        pagerduty_routing_key: Type.Optional(Type.String()),
        /** File holding the PagerDuty routing key; alertmanager.yml names the file (routing_key_file). */
        pagerduty_routing_key_file: Type.Optional(Type.String()),
        /** PagerDuty Events API v2 endpoint; default Alertmanager's (https://events.pagerduty.com/v2/enqueue). */
        pagerduty_url: Type.Optional(Type.String()),
      },
      { default: {} },
    ),
    monitoring: Type.Object(
      {
        /** How often the daemon samples nvidia-smi for its helix_gpu_* metrics, in milliseconds; 0 turns it off (off by itself when there is no nvidia-smi). */
        gpu_interval_ms: Type.Integer({ minimum: 0, default: 5000 }),
        /** API key ids labelled one by one in the per-key business metrics; further keys count as key_id="other". */
        max_key_series: Type.Integer({ minimum: 0, default: 500 }),
      },
      { default: {} },
    ),
    models: Type.Object(
      {
        /** Model repository directory, relative to the helix directory. */
        repository: Type.String({ default: 'models' }),
        /** Default device policy for models without config: cuda, webgpu, cpu or auto. */
        device: Type.Union(
          [Type.Literal('auto'), Type.Literal('cuda'), Type.Literal('webgpu'), Type.Literal('cpu')],
          {
            default: 'auto',
          },
        ),
        /** Which models load at start: all, none (load them through the API), or lazy (each on its first request). */
        load: Type.Union([Type.Literal('all'), Type.Literal('none'), Type.Literal('lazy')], {
          default: 'all',
        }),
        /** How long a request waits for its model to load on demand before a 503, in milliseconds. */
        lazy_load_timeout_ms: Type.Integer({ minimum: 1, default: 30_000 }),
        /** Host memory the loaded models may take ("2g", "512m"; estimated from their files); least recently used idle models are unloaded to stay within it. Unset: no budget. */
        memory_budget: Type.Optional(
          Type.Union([Type.Integer({ minimum: 1 }), Type.String({ pattern: '^[0-9]+[kKmMgG]?$' })]),
        ),
        /** Worker threads every CPU model's sessions share (0: one per core); each session gets cores / threads intra-op threads. */
        worker_pool_size: Type.Integer({ minimum: 0, default: 0 }),
        /** Where ONNX instances run unless a model's config says otherwise: thread (default) or process (a native crash costs one instance, not the daemon). */
        isolation: Type.Union([Type.Literal('thread'), Type.Literal('process')], { default: 'thread' }),
        /** Models loading at once (0: twice the cores). */
        load_concurrency: Type.Integer({ minimum: 0, default: 0 }),
      },
      { default: {} },
    ),
    backends: Type.Object(
      {
        /** TorchScript models (model.pt), run by long-lived Python worker processes. */
        pytorch: Type.Object(
          {
            /** The Python that runs the workers; it must import torch (Debian: apt-get install python3-torch). */
            python: Type.String({ minLength: 1, default: '/usr/bin/python3' }),
            /** Seconds a batch may take before its worker counts as hung and is restarted. */
            run_timeout_s: Type.Number({ exclusiveMinimum: 0, default: 60 }),
            /** How tensors move between the daemon and the workers: shm (a 0600 file in /dev/shm both map; faster for large tensors), pipe (raw frames on stdin/stdout), or auto (shm where /dev/shm exists). */
            channel: Type.Union([Type.Literal('auto'), Type.Literal('shm'), Type.Literal('pipe')], {
              default: 'auto',
            }),
          },
          { default: {}, additionalProperties: false },
        ),
      },
      { default: {}, additionalProperties: false },
    ),
  },
  { additionalProperties: true },
)

export type HelixConfig = Static<typeof HelixConfigSchema>

export { Hostname as HostnameSchema }
