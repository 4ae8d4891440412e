-- A daemon that stops while the database is unreachable saves the usage counters and request-log rows
-- it still holds to a file under data/usage-spool/, and the next daemon to start writes them. Each
-- file has an id, recorded here in the same transaction as its rows, so a file is written once even
-- when two replicas replay it at the same time or a daemon stops between the commit and deleting it.
CREATE TABLE usage_spool_replays (
  id uuid PRIMARY KEY,
  replayed_at timestamptz NOT NULL DEFAULT now(),
  request_rows integer NOT NULL
);
