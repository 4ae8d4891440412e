#!/usr/bin/env bash
# Starts Debian's PostgreSQL (apt package `postgresql`, 15 on bookworm) on a spare port for the test
# run against an external database, and exports TEST_EXTERNAL_DATABASE_URL for it.
#
#   . .ci/postgres.sh            # start (idempotent) and export TEST_EXTERNAL_DATABASE_URL here
#   eval "$(.ci/postgres.sh)"    # the same from a script that runs it as a child
#   .ci/postgres.sh stop         # stop the server (the data directory stays for the next run)
#
# The URL's role may create databases: each test file creates and drops its own database on it.
# Settings: HELIX_CI_PGPORT (55432), HELIX_CI_PGDATA (/tmp/helix-ci-postgres), PG_BINDIR (newest
# /usr/lib/postgresql/*/bin). As root, the server runs as the OS user `postgres` (the package creates it).

helix_ci_postgres() (
  set -euo pipefail
  local port="${HELIX_CI_PGPORT:-55432}"
  local data="${HELIX_CI_PGDATA:-/tmp/helix-ci-postgres}"
  local bindir="${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
  if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
    echo "postgres.sh: no PostgreSQL server binaries; install them with: apt-get install -y postgresql" >&2
    return 1
  fi
  local as=()
  if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi

  if [ "${1:-start}" = stop ]; then
    if [ -f "$data/postmaster.pid" ]; then "${as[@]}" "$bindir/pg_ctl" stop -D "$data" -m fast -w >&2; fi
    return 0
  fi

  local password_file="$data.password"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    mkdir -p "$data"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$data"; fi
    chmod 700 "$data"
    # Local socket: trust (only the server's OS user can reach the socket in the data directory);
    # TCP: scram-sha-256, which is what the tests use.
    "${as[@]}" "$bindir/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >&2
    head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$password_file"
    chmod 600 "$password_file"
  fi
  if ! "${as[@]}" "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1; then
    "${as[@]}" "$bindir/pg_ctl" start -D "$data" -l "$data/server.log" -w -t 60 \
      -o "-p $port -k $data -c listen_addresses=127.0.0.1" >&2
  fi
  local password
  password="$(cat "$password_file")"
  local psql=("${as[@]}" "$bindir/psql" -h "$data" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt)
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'helix_ci'")" != 1 ]; then
    "${psql[@]}" -c "CREATE ROLE helix_ci LOGIN CREATEDB PASSWORD '$password'" >&2
  fi
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'helix_ci'")" != 1 ]; then
    "${psql[@]}" -c "CREATE DATABASE helix_ci OWNER helix_ci" >&2
  fi
  echo "export TEST_EXTERNAL_DATABASE_URL='postgresql://helix_ci:$password@127.0.0.1:$port/helix_ci'"
)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: start and export into the caller's shell.
  if __helix_ci_export="$(helix_ci_postgres "$@")"; then
    eval "$__helix_ci_export"
    unset __helix_ci_export
    echo "TEST_EXTERNAL_DATABASE_URL exported (PostgreSQL on port ${HELIX_CI_PGPORT:-55432})" >&2
  else
    unset __helix_ci_export
    return 1
  fi
else
  helix_ci_postgres "$@"
fi
