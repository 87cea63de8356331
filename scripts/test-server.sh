# Sourced by the scripts that test a running server (interop.sh, fuzz.sh).
# start_test_server KEY=VALUE…: starts the built server ($GATEHOUSE_TEST_BIN, default
# the debug build) on a free loopback port with a fresh data directory, configured by
# the given GATEHOUSE_* settings and nothing else (the caller's GATEHOUSE_* variables
# would be read as configuration), waits until it answers, and stops it and removes
# the directory on exit. Sets: port, pid, data, log. The port is $TEST_SERVER_PORT when
# set (for settings that name it, such as http.public_url).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_test_server() {
  local bin=${GATEHOUSE_TEST_BIN:-target/debug/gatehouse}
  data=$(mktemp -d)
  port=${TEST_SERVER_PORT:-$(free_port)}
  log="$data/server.log"
  # shellcheck disable=SC2046
  env $(env | sed -n 's/^\(GATEHOUSE_[A-Za-z0-9_]*\)=.*/-u \1/p') "$@" \
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$log" 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
  done
  echo "the server did not answer on port $port"; cat "$log"; exit 1
}
