-- The auth data layer (issue 4 §3), designed for the identity work (issue 6).
-- Every foreign key is DEFERRABLE so `helix db restore` can load tables in any order inside one
-- transaction (SET CONSTRAINTS ALL DEFERRED) without superuser rights.
-- gen_random_uuid() is built in since PostgreSQL 13; no extension is needed.

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Stored as typed; uniqueness and look-ups are case-insensitive through lower(email).
  email text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  -- argon2id PHC string ($argon2id$v=19$m=…); NULL for accounts that cannot log in with a password.
  password_hash text,
  display_name text,
  role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  email_verified_at timestamptz,
  disabled_at timestamptz,
  -- Bumped on password change, disable and delete so every session issued before is void.
  password_changed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- Refresh tokens rotate on every use (RFC 9700 §4.14); all tokens of one login share a family so
-- reuse of a rotated token can revoke the whole family.
CREATE TABLE refresh_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE DEFERRABLE,
  family_id uuid NOT NULL,
  -- SHA-256 (hex) of the opaque ≥128-bit token; the token itself is never stored.
  token_hash text NOT NULL UNIQUE,
  parent_id uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL DEFERRABLE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz,
  ip inet,
  user_agent text
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

-- Access tokens revoked before they expire (logout, disable), by JWT id; rows can be purged once
-- expires_at has passed because the token is refused by its exp claim from then on.
CREATE TABLE revoked_tokens (
  jti text PRIMARY KEY,
  user_id uuid REFERENCES users (id) ON DELETE SET NULL DEFERRABLE,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz NOT NULL DEFAULT now(),
  reason text
);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);

CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Owner; NULL for service keys that belong to no user account.
  user_id uuid REFERENCES users (id) ON DELETE CASCADE DEFERRABLE,
  name text NOT NULL,
  -- Shown in lists instead of the secret: the key's fixed prefix and its last 4 characters.
  prefix text NOT NULL,
  last4 text NOT NULL,
  -- SHA-256 (hex) of the full key; enough for 128-bit random secrets.
  key_hash text NOT NULL UNIQUE,
  scopes text[] NOT NULL DEFAULT '{}',
  -- Per-model restriction; NULL means every model the scopes allow.
  models text[],
  -- Requests per minute; NULL means the server default.
  rate_limit_per_min integer CHECK (rate_limit_per_min > 0),
  quota_requests bigint CHECK (quota_requests > 0),
  quota_items bigint CHECK (quota_items > 0),
  quota_period text CHECK (quota_period IN ('day', 'month')),
  expires_at timestamptz,
  revoked_at timestamptz,
  -- Rotation keeps the key id: the previous secret's hash stays valid until grace_until.
  rotated_from_hash text,
  rotated_at timestamptz,
  grace_until timestamptz,
  last_used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);
CREATE INDEX api_keys_rotated_from_idx ON api_keys (rotated_from_hash) WHERE rotated_from_hash IS NOT NULL;

-- Usage counters per key per hour; quotas sum the hours of the current day or month.
CREATE TABLE api_key_usage (
  key_id uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE DEFERRABLE,
  hour timestamptz NOT NULL CHECK (hour = date_trunc('hour', hour)),
  requests bigint NOT NULL DEFAULT 0,
  errors bigint NOT NULL DEFAULT 0,
  tokens bigint NOT NULL DEFAULT 0,
  items bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (key_id, hour)
);

CREATE TABLE email_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE DEFERRABLE,
  purpose text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
  -- SHA-256 (hex) of the ≥128-bit code or link token; single use (used_at).
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz
);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose);

-- Who did what, when, from where. The actor is kept as text so entries survive the user's deletion
-- (GDPR erasure anonymises them by clearing actor_user_id, actor and ip).
CREATE TABLE audit_log (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor_user_id uuid REFERENCES users (id) ON DELETE SET NULL DEFERRABLE,
  actor text,
  action text NOT NULL,
  target text,
  ip inet,
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id, at);
CREATE INDEX audit_log_action_idx ON audit_log (action, at);

-- Request metadata for quotas and GDPR export. Never payloads: no inputs, outputs or prompts.
CREATE TABLE request_log (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  request_id text NOT NULL,
  user_id uuid REFERENCES users (id) ON DELETE SET NULL DEFERRABLE,
  api_key_id uuid REFERENCES api_keys (id) ON DELETE SET NULL DEFERRABLE,
  method text NOT NULL,
  route text NOT NULL,
  model text,
  model_version text,
  status integer NOT NULL,
  duration_ms double precision NOT NULL,
  items integer NOT NULL DEFAULT 0,
  tokens integer NOT NULL DEFAULT 0,
  ip inet,
  user_agent text
);
CREATE INDEX request_log_at_idx ON request_log (at);
CREATE INDEX request_log_user_idx ON request_log (user_id, at);
CREATE INDEX request_log_key_idx ON request_log (api_key_id, at);
