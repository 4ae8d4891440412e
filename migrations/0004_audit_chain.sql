-- The audit log is append-only and hash-chained, so `helix audit verify` detects an entry that was
-- changed, removed or slipped in.
--
-- Each entry gets a gap-free position (seq) and a SHA-256 hash over the previous entry's hash and its
-- own content. Who acted and from where (actor_user_id, actor, ip) enter the hash through
-- subject_digest = SHA-256(subject_salt || those fields), with a random salt per entry: GDPR erasure
-- clears the three fields and the salt, and the chain still verifies while the digest no longer links
-- to the person. Retention removes the oldest entries only as a prefix of the chain, and keeps the
-- last removed entry's position and hash in audit_chain_anchor, where the remaining chain starts.
--
-- A trigger refuses UPDATE, DELETE and TRUNCATE except for these two operations, which run as the
-- functions below (helix_audit_erase_actor, helix_audit_purge_before). `helix db restore` loads
-- backed-up entries with their recorded chain (helix.audit_maintenance = 'restore').

ALTER TABLE audit_log
  ADD COLUMN seq bigint,
  ADD COLUMN subject_salt bytea,
  ADD COLUMN subject_digest bytea,
  ADD COLUMN prev_hash bytea,
  ADD COLUMN hash bytea;

CREATE TABLE audit_chain_anchor (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  seq bigint NOT NULL,
  hash bytea NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION helix_audit_subject_digest(salt bytea, actor_user_id uuid, actor text, ip inet)
RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT sha256(salt || convert_to(concat_ws(chr(31),
    coalesce(actor_user_id::text, ''), coalesce(actor, ''), coalesce(host(ip), '')), 'UTF8'))
$$;

CREATE OR REPLACE FUNCTION helix_audit_entry_hash(
  prev bytea, seq bigint, id bigint, at timestamptz, action text, target text, details jsonb, subject bytea
) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT sha256(prev || convert_to(concat_ws(chr(31),
    seq::text, id::text, (extract(epoch FROM at) * 1000000)::bigint::text, action, coalesce(target, ''),
    details::text, encode(subject, 'hex')), 'UTF8'))
$$;

-- Chain existing entries in id order.
DO $$
DECLARE
  r record;
  prev bytea := decode(repeat('00', 32), 'hex');
  n bigint := 0;
  salt bytea;
  subject bytea;
BEGIN
  FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
    n := n + 1;
    salt := uuid_send(gen_random_uuid());
    subject := helix_audit_subject_digest(salt, r.actor_user_id, r.actor, r.ip);
    UPDATE audit_log
       SET seq = n, subject_salt = salt, subject_digest = subject, prev_hash = prev,
           hash = helix_audit_entry_hash(prev, n, r.id, r.at, r.action, r.target, r.details, subject)
     WHERE id = r.id
     RETURNING hash INTO prev;
  END LOOP;
END
$$;

ALTER TABLE audit_log
  ALTER COLUMN seq SET NOT NULL,
  ALTER COLUMN subject_digest SET NOT NULL,
  ALTER COLUMN prev_hash SET NOT NULL,
  ALTER COLUMN hash SET NOT NULL;
CREATE UNIQUE INDEX audit_log_seq_idx ON audit_log (seq);

-- Every new entry links to the newest one; one writer at a time (a transaction-scoped advisory lock).
CREATE OR REPLACE FUNCTION helix_audit_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_seq bigint;
  last_hash bytea;
BEGIN
  IF current_setting('helix.audit_maintenance', true) = 'restore' THEN
    RETURN NEW;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('helix_audit_chain'));
  SELECT seq, hash INTO last_seq, last_hash FROM audit_log ORDER BY seq DESC LIMIT 1;
  IF last_seq IS NULL THEN
    SELECT seq, hash INTO last_seq, last_hash FROM audit_chain_anchor;
  END IF;
  NEW.seq := coalesce(last_seq, 0) + 1;
  NEW.prev_hash := coalesce(last_hash, decode(repeat('00', 32), 'hex'));
  NEW.subject_salt := uuid_send(gen_random_uuid());
  NEW.subject_digest := helix_audit_subject_digest(NEW.subject_salt, NEW.actor_user_id, NEW.actor, NEW.ip);
  NEW.hash := helix_audit_entry_hash(
    NEW.prev_hash, NEW.seq, NEW.id, NEW.at, NEW.action, NEW.target, NEW.details, NEW.subject_digest);
  RETURN NEW;
END
$$;

CREATE TRIGGER audit_log_link BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION helix_audit_link();

-- UPDATE may only erase who acted (GDPR); a user's deletion (ON DELETE SET NULL) erases it the same
-- way. DELETE only through retention; TRUNCATE never.
CREATE OR REPLACE FUNCTION helix_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  mode text := coalesce(current_setting('helix.audit_maintenance', true), '');
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF mode = 'retention' THEN
      RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: DELETE is refused (entries leave only through retention)'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION 'audit_log is append-only: TRUNCATE is refused' USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- Only entries that name a user can be erased, and nothing but who acted changes.
  IF OLD.actor_user_id IS NOT NULL AND NEW.actor_user_id IS NULL AND mode <> 'erase' THEN
    NEW.actor := 'erased-user';
    NEW.ip := NULL;
    NEW.subject_salt := NULL;
  END IF;
  IF OLD.actor_user_id IS NOT NULL AND NEW.seq = OLD.seq AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.action = OLD.action
     AND NEW.target IS NOT DISTINCT FROM OLD.target AND NEW.details = OLD.details
     AND NEW.subject_digest = OLD.subject_digest AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash
     AND NEW.actor_user_id IS NULL AND NEW.ip IS NULL AND NEW.subject_salt IS NULL
     AND NEW.actor = 'erased-user' THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: UPDATE is refused (only erasing who acted is allowed)'
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION helix_audit_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION helix_audit_guard();

-- GDPR erasure of one user's entries: returns how many were anonymised.
CREATE OR REPLACE FUNCTION helix_audit_erase_actor(user_id uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  PERFORM set_config('helix.audit_maintenance', 'erase', true);
  UPDATE audit_log SET actor_user_id = NULL, actor = 'erased-user', ip = NULL, subject_salt = NULL
   WHERE actor_user_id = user_id;
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM set_config('helix.audit_maintenance', '', true);
  RETURN n;
END
$$;

-- Retention: removes the entries before the first one at or after `cutoff` (a prefix of the chain)
-- and records where the remaining chain starts. Returns how many were removed.
CREATE OR REPLACE FUNCTION helix_audit_purge_before(cutoff timestamptz) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  keep_from bigint;
  last_seq bigint;
  last_hash bytea;
  n bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('helix_audit_chain'));
  SELECT min(seq) INTO keep_from FROM audit_log WHERE at >= cutoff;
  SELECT seq, hash INTO last_seq, last_hash FROM audit_log
   WHERE keep_from IS NULL OR seq < keep_from ORDER BY seq DESC LIMIT 1;
  IF last_seq IS NULL THEN
    RETURN 0;
  END IF;
  PERFORM set_config('helix.audit_maintenance', 'retention', true);
  DELETE FROM audit_log WHERE seq <= last_seq;
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM set_config('helix.audit_maintenance', '', true);
  INSERT INTO audit_chain_anchor (singleton, seq, hash, at) VALUES (true, last_seq, last_hash, now())
    ON CONFLICT (singleton) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, at = EXCLUDED.at;
  RETURN n;
END
$$;
