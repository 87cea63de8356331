#!/usr/bin/env bash
# Gatehouse nodes on one PostgreSQL behind HAProxy (Debian's `haproxy`, installed when
# missing), health-checked on /ready.
#
#   scripts/cluster.sh start [N]   N nodes (default 3) and HAProxy, in the background;
#                                  prints the URL; state in target/cluster/
#   scripts/cluster.sh stop        stops them all, by the process ids it recorded
#   scripts/cluster.sh test        start 3, drive mixed traffic through HAProxy
#                                  (tests/interop/cluster.mjs), SIGKILL one node in the
#                                  middle and restart it, check (every failed request
#                                  traced, in HAProxy's log, to the killed node), stop
#                                  (CI runs this)
#
# PostgreSQL: $GATEHOUSE_TEST_POSTGRES_URL, else scripts/postgres.sh; each start gets a
# schema of its own. The binary: $GATEHOUSE_TEST_BIN, default the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
state=target/cluster
bin=${GATEHOUSE_TEST_BIN:-target/debug/gatehouse}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts node $1 on its recorded port; records its pid, and where its log stood (so
# node_ready reads only what this run logs).
start_node() {
  local i=$1 port
  port=$(cat "$state/node$i.port")
  touch "$state/node$i.log"
  wc -c <"$state/node$i.log" >"$state/node$i.offset"
  # shellcheck disable=SC2046
  env $(env | sed -n 's/^\(GATEHOUSE_[A-Za-z0-9_]*\)=.*/-u \1/p') \
    GATEHOUSE_DATABASE_URL="$(cat "$state/database_url")" \
    GATEHOUSE_JWT_SECRET="$(cat "$state/jwt_secret")" \
    GATEHOUSE_OWNID__SHARED_SECRETS="$(cat "$state/ownid_secret")" \
    GATEHOUSE_SIWE__DOMAINS=http://localhost:8080 \
    GATEHOUSE_HTTP__DRAIN_SECS=2 \
    GATEHOUSE_HTTP__TRUSTED_PROXIES=127.0.0.1 \
    GATEHOUSE_RATE_LIMIT__PER_ADDRESS=1000000 \
    GATEHOUSE_SESSION__REFRESH_REUSE_GRACE_SECS=0 \
    GATEHOUSE_ARGON2__MEMORY_KIB=1024 \
    GATEHOUSE_DATABASE_MAX_CONNECTIONS=8 \
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$state/node$i" \
    >>"$state/node$i.log" 2>&1 &
  echo $! >"$state/node$i.pid"
}

# Waits until node $1 itself says it listens on its port (its own "listening" line,
# and it still runs), then until it is ready: a port some other process answers on is
# never taken for the node.
node_ready() {
  local i=$1 port pid offset
  port=$(cat "$state/node$i.port")
  pid=$(cat "$state/node$i.pid")
  offset=$(cat "$state/node$i.offset")
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || { echo "node$i exited:" >&2; tail -c +$((offset + 1)) "$state/node$i.log" >&2; return 1; }
    if tail -c +$((offset + 1)) "$state/node$i.log" | grep -q "listening.*address=127\.0\.0\.1:$port\b"; then
      wait_ready "http://127.0.0.1:$port"
      return
    fi
    sleep 0.1
  done
  echo "node$i did not say it listens on $port" >&2
  return 1
}

wait_ready() {
  local url=$1
  for _ in $(seq 1 150); do
    curl -fsS "$url/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "no answer from $url/ready" >&2
  return 1
}

start() {
  local n=${1:-3}
  command -v haproxy >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq haproxy >/dev/null
  }
  [ -x "$bin" ] || cargo build -q --bin gatehouse
  stop 2>/dev/null || true
  rm -rf "$state" && mkdir -p "$state"
  local pg=${GATEHOUSE_TEST_POSTGRES_URL:-$(scripts/postgres.sh)}
  local schema="cluster_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  psql -q "$pg" -c "CREATE SCHEMA $schema" >/dev/null
  echo "$pg" >"$state/postgres_url"
  echo "$schema" >"$state/schema"
  local sep='?'; case $pg in *\?*) sep='&';; esac
  echo "${pg}${sep}options=-c%20search_path%3D${schema}" >"$state/database_url"
  head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$state/jwt_secret"
  head -c 32 /dev/urandom | base64 >"$state/ownid_secret"
  local servers=""
  for i in $(seq 1 "$n"); do
    free_port >"$state/node$i.port"
    servers="$servers    server node$i 127.0.0.1:$(cat "$state/node$i.port") check inter 500ms fall 1 rise 2
"
  done
  # The first node migrates the schema; the others start once it is ready.
  start_node 1
  node_ready 1
  for i in $(seq 2 "$n"); do start_node "$i"; done
  for i in $(seq 2 "$n"); do node_ready "$i"; done
  local port; port=$(free_port)
  # Every request is logged (to haproxy.log) with the id the client sent as
  # X-Request-Id, the server that handled it, its status, when it began (the accept
  # date, Unix s and ms, plus the handshake and idle times before its first byte), how
  # long it was active and how it ended: the cluster test traces each failed request
  # to the killed node with it.
  cat >"$state/haproxy.cfg" <<CFG
global
    maxconn 4096
    log stdout format raw local0
defaults
    mode http
    log global
    log-format "id=%[capture.req.hdr(0)] server=%s status=%ST accepted_s=%Ts accepted_ms=%ms handshake_ms=%Th idle_ms=%Ti active_ms=%Ta retries=%rc end=%tsc"
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch 1
    retry-on conn-failure
    # One request per client connection: on a kept-alive one, HAProxy answers a
    # request whose server closed before answering by closing the client connection,
    # unlogged, for the client to retry (haproxy/haproxy#3414); so that every failed
    # request is a logged 502 naming its server, none is kept alive.
    option httpclose
    option forwardfor
frontend gatehouse
    bind 127.0.0.1:$port
    http-request capture req.hdr(x-request-id) len 64
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /ready
$servers
CFG
  # In the foreground and without -q (logging to stdout needs both), in the background.
  haproxy -f "$state/haproxy.cfg" >>"$state/haproxy.log" 2>&1 &
  echo $! >"$state/haproxy.pid"
  echo "http://127.0.0.1:$port" >"$state/url"
  wait_ready "$(cat "$state/url")"
  cat "$state/url"
}

stop() {
  [ -d "$state" ] || return 0
  local f pid
  for f in "$state"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    # Only what this script started: a pid reused since is left alone.
    grep -qaE 'gatehouse|haproxy' "/proc/$pid/cmdline" 2>/dev/null && kill "$pid" 2>/dev/null || true
  done
  for f in "$state"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$f"
  done
  if [ -e "$state/schema" ]; then
    psql -q "$(cat "$state/postgres_url")" -c "DROP SCHEMA $(cat "$state/schema") CASCADE" >/dev/null 2>&1 || true
    rm -f "$state/schema"
  fi
}

cluster_test() {
  [ -d tests/interop/node_modules ] || (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
  local url; url=$(start 3)
  trap stop EXIT
  echo "cluster: 3 nodes behind HAProxy at $url"
  local seconds=8
  GATEHOUSE_URL="$url" GATEHOUSE_OWNID_SECRET="$(cat "$state/ownid_secret")" \
    CLUSTER_SECONDS=$seconds CLUSTER_WORKERS=8 \
    CLUSTER_HAPROXY_LOG="$state/haproxy.log" CLUSTER_KILLED="$state/killed.json" \
    CLUSTER_NODES="http://127.0.0.1:$(cat "$state/node1.port") http://127.0.0.1:$(cat "$state/node3.port")" \
    node tests/interop/cluster.mjs >"$state/summary.json" &
  local load=$!
  sleep 3
  local victim; victim=$(cat "$state/node2.pid")
  echo "cluster: SIGKILL node2 (pid $victim) mid-traffic"
  # When the signal was sent and when the process was gone (its sockets closed): a
  # request may fail only if node2 held it then (received before it was gone, not
  # finished before the signal).
  local killed_at dead_at
  killed_at=$(date +%s%3N)
  kill -9 "$victim"
  for _ in $(seq 1 200); do
    case $(cut -d' ' -f3 "/proc/$victim/stat" 2>/dev/null || echo gone) in
      Z | X | gone) break ;;
    esac
    sleep 0.005
  done
  dead_at=$(date +%s%3N)
  echo "{\"server\":\"node2\",\"killed_at\":$killed_at,\"dead_at\":$dead_at}" >"$state/killed.json"
  sleep 2
  echo "cluster: restarting node2"
  start_node 2
  node_ready 2
  local status=0
  wait "$load" || status=$?
  cat "$state/summary.json"
  for secret in "$(cat "$state/jwt_secret")" "$(cat "$state/ownid_secret")"; do
    if grep -qF "$secret" "$state"/node*.log; then
      echo "FAIL: a secret appeared in a node's log"; status=1
    fi
  done
  [ "$status" -eq 0 ] && echo "cluster: passed" || { echo "cluster: FAILED"; tail -n 20 "$state"/node*.log; }
  return "$status"
}

case ${1:-} in
  start) start "${2:-3}" ;;
  stop) stop ;;
  test) cluster_test ;;
  *) echo "usage: $0 start [N] | stop | test" >&2; exit 2 ;;
esac
