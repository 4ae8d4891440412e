import { type Static, Type } from '@sinclair/typebox'

/**
 * helix.yaml, the one settings file of a helix directory. Each field carries a one-line doc; defaults
 * apply to anything left out, so an empty file is valid. Env vars (HELIX_*, DATABASE_URL, REDIS_URL)
 * override the file; flags override both (see loadConfig).
 */
const Hostname = Type.String({ pattern: '^(?=.{1,253}$)(\\*\\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$' })

export const KeyTypeSchema = Type.Union([Type.Literal('ecdsa'), Type.Literal('rsa')])
export type KeyType = Static<typeof KeyTypeSchema>

export const JwtAlgorithmSchema = Type.Union([Type.Literal('EdDSA'), Type.Literal('ES256'), Type.Literal('RS256')])
export type JwtAlgorithm = Static<typeof JwtAlgorithmSchema>

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
      },
      { default: {} },
    ),
    nginx: Type.Object(
      {
        /** Daemon instances nginx balances over (host:port). */
        upstreams: Type.Array(Type.String(), { default: ['127.0.0.1:8080'] }),
        /** Ports nginx listens on for HTTP (redirect) and HTTPS. */
        http_port: Type.Integer({ minimum: 1, maximum: 65535, default: 80 }),
        https_port: Type.Integer({ minimum: 1, maximum: 65535, default: 443 }),
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
    models: Type.Object(
      {
        /** Model repository directory, relative to the helix directory. */
        repository: Type.String({ default: 'models' }),
        /** Default device policy for models without config: cuda, webgpu, cpu or auto. */
        device: Type.Union([Type.Literal('auto'), Type.Literal('cuda'), Type.Literal('webgpu'), Type.Literal('cpu')], {
          default: 'auto',
        }),
      },
      { default: {} },
    ),
  },
  { additionalProperties: true },
)

export type HelixConfig = Static<typeof HelixConfigSchema>

export { Hostname as HostnameSchema }
