# Sourced by the scripts that test a running server (interop.sh, fuzz.sh, authlib.sh, …).
# start_test_server KEY=VALUE…: starts the built server ($GATEHOUSE_TEST_BIN, default
# the debug build) on loopback with a fresh data directory, configured by the given
# GATEHOUSE_* settings and nothing else (the caller's GATEHOUSE_* variables would be
# read as configuration), waits until it answers, and stops it and removes the
# directory on exit. Sets: port, pid, data, log. The port is the system's choice (the
# server listens on port 0), or $TEST_SERVER_PORT when set (for settings that name it,
# such as http.public_url); either way it is read from the server's own "listening"
# line, so a server that already answers on some port (a `gatehouse serve` on 8080) is
# never taken for this one.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The port of the address in the "listening … address=127.0.0.1:PORT" line of $1.
listening_port() {
  sed -n 's/.*listening.*address=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$1" | head -n 1
}

start_test_server() {
  local bin=${GATEHOUSE_TEST_BIN:-target/debug/gatehouse}
  data=$(mktemp -d)
  log="$data/server.log"
  # Made here, not by the background job's redirection, which may not have run yet
  # when the loop below first reads it.
  : >"$log"
  # shellcheck disable=SC2046
  env $(env | sed -n 's/^\(GATEHOUSE_[A-Za-z0-9_]*\)=.*/-u \1/p') "$@" \
    "$bin" serve --listen "127.0.0.1:${TEST_SERVER_PORT:-0}" --data-dir "$data" >"$log" 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
  port=
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    [ -n "$port" ] || port=$(listening_port "$log")
    if [ -n "$port" ] && curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "the server did not answer${port:+ on port $port}"; cat "$log"; exit 1
}

# run_against_provider CMD…: starts the built server as an OpenID Connect provider on a
# port of its own (its http.public_url names it), runs CMD with GATEHOUSE_PUBLIC_URL,
# GATEHOUSE_BIN and GATEHOUSE_DATA_DIR set (a test drives the CLI on the same data to
# register its clients), and exits with CMD's status, the server's last lines after a
# failure. For the relying-party suites (authlib.sh, openidconnect-rp.sh).
run_against_provider() {
  TEST_SERVER_PORT=$(free_port)
  local public_url="http://127.0.0.1:$TEST_SERVER_PORT"
  start_test_server \
    GATEHOUSE_HTTP__PUBLIC_URL="$public_url" \
    GATEHOUSE_OIDC__ENABLED=true \
    GATEHOUSE_RATE_LIMIT__ENABLED=false \
    GATEHOUSE_ARGON2__MEMORY_KIB=4096
  local status=0
  GATEHOUSE_PUBLIC_URL="$public_url" \
  GATEHOUSE_BIN="${GATEHOUSE_TEST_BIN:-target/debug/gatehouse}" \
  GATEHOUSE_DATA_DIR="$data" \
    "$@" || status=$?
  [ "$status" -eq 0 ] || { echo "server log:"; tail -n 50 "$log"; }
  exit "$status"
}
