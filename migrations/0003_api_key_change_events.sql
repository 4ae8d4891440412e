-- Daemons cache API key look-ups (issue 6: auth overhead) and must drop an entry the moment the key
-- changes, on every replica. This trigger announces each change that matters for authentication on
-- the helix_api_keys channel (payload: the key id); daemons LISTEN and evict. last_used_at updates
-- are not announced: they do not change what a key may do.
CREATE OR REPLACE FUNCTION helix_announce_api_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('helix_api_keys', OLD.id::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_announce_change
  AFTER UPDATE OF user_id, key_hash, scopes, models, rate_limit_per_min, quota_requests, quota_items, quota_period,
                  expires_at, revoked_at, rotated_from_hash, grace_until
  OR DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION helix_announce_api_key_change();
