#!/usr/bin/env bash
# A PostgreSQL server for patchctl's tests and for trying the PostgreSQL store by hand, run from
# Debian's own packages (postgresql, installed by `make deps`) in a directory this checkout owns.
#
#   tools/pg.sh start    initialise the cluster on first use, start it (quick when it runs)
#   tools/pg.sh stop     stop it (the data stays; `rm -rf .pg` removes everything)
#   tools/pg.sh status   exit 0 when it runs, and say where
#   tools/pg.sh url      print the SQLAlchemy URL of its `patchctl` database (with the password)
#
# The cluster lives in $PATCHCTL_PG_DIR (default: .pg in the checkout): data/, the server's log,
# its socket, the port and the URL. It listens on 127.0.0.1 only, on a port of its own (chosen
# once, free at the time, kept in .pg/port), so several checkouts on one machine do not collide
# and the machine's own cluster (pg_ctlcluster, port 5432) is never touched. Its superuser is
# `patchctl` with a random password (scram-sha-256); the URL (mode 0600) carries it.
# It is a test cluster: fsync is off. PostgreSQL refuses to run as root, so as root the server
# runs as Debian's `postgres` user, which owns data/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${PATCHCTL_PG_DIR:-$ROOT/.pg}"
DATA="$DIR/data"
LOG="$DIR/server.log"
SOCK="$DIR/run"
DB=patchctl
SUPERUSER=patchctl

die() { echo "tools/pg.sh: $*" >&2; exit 1; }

bindir() {
  local v
  v="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -n | tail -1)"
  [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/initdb" ] \
    || die "PostgreSQL server binaries not found in /usr/lib/postgresql (run 'make deps' as root)"
  echo "/usr/lib/postgresql/$v/bin"
}

# Run a server command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user (Debian's postgresql package makes it)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

choose_port() {
  local p
  p=$(( 20000 + $(printf '%s' "$DIR" | cksum | cut -d' ' -f1) % 10000 ))
  for _ in $(seq 1 200); do
    if ! listening "$p"; then echo "$p"; return; fi
    p=$(( p + 1 ))
  done
  die "no free port found near $p"
}

running() {
  [ -f "$DATA/PG_VERSION" ] && as_owner "$(bindir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

init_cluster() {
  local bin pw pwfile
  bin="$(bindir)"
  mkdir -p "$DIR"
  chmod 0755 "$DIR"
  pw="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  pwfile="$(mktemp "$DIR/.pw.XXXXXX")"
  printf '%s\n' "$pw" > "$pwfile"
  mkdir -p "$DATA" "$SOCK"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$DATA" "$SOCK" "$pwfile"; fi
  chmod 0700 "$DATA"
  as_owner "$bin/initdb" -D "$DATA" -U "$SUPERUSER" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 \
    || { rm -f "$pwfile"; cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pwfile"
  port="$(choose_port)"
  echo "$port" > "$DIR/port"
  cat >> "$DATA/postgresql.conf" <<EOF
# tools/pg.sh: a test cluster of this checkout, on loopback only
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$SOCK'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  (umask 077; echo "postgresql+psycopg://$SUPERUSER:$pw@127.0.0.1:$port/$DB" > "$DIR/url")
  echo "tools/pg.sh: initialised a cluster in $DATA (port $port)"
}

start() {
  local bin port
  bin="$(bindir)"
  [ -f "$DATA/PG_VERSION" ] || init_cluster
  port="$(cat "$DIR/port")"
  if running; then
    echo "tools/pg.sh: running on 127.0.0.1:$port ($DATA)"
    return
  fi
  if listening "$port"; then
    die "port $port is taken by another program: remove $DIR to start afresh on another port"
  fi
  touch "$LOG"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$LOG" "$SOCK"; fi
  as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null \
    || { tail -20 "$LOG" >&2; die "the server did not start (log: $LOG)"; }
  # The database patchctl's URL names (created once).
  local url pw
  url="$(cat "$DIR/url")"
  pw="${url#*://$SUPERUSER:}"; pw="${pw%%@*}"
  if ! PGPASSWORD="$pw" "$bin/psql" -h 127.0.0.1 -p "$port" -U "$SUPERUSER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    PGPASSWORD="$pw" "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$SUPERUSER" "$DB"
  fi
  echo "tools/pg.sh: started on 127.0.0.1:$port ($DATA)"
}

stop() {
  if running; then
    as_owner "$(bindir)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    echo "tools/pg.sh: stopped ($DATA)"
  else
    echo "tools/pg.sh: not running ($DATA)"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if running; then echo "tools/pg.sh: running on 127.0.0.1:$(cat "$DIR/port") ($DATA)"; else
      echo "tools/pg.sh: not running ($DATA)"; exit 1; fi ;;
  url)
    [ -f "$DIR/url" ] || die "no cluster in $DIR yet: run 'tools/pg.sh start' (or 'make pg')"
    cat "$DIR/url" ;;
  *) echo "usage: tools/pg.sh start|stop|status|url" >&2; exit 2 ;;
esac
