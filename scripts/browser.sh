#!/usr/bin/env bash
# Passkeys in a real browser: installs Debian's chromium if it is missing, starts the
# built server on a free port with its passkey origin set to the test page's, and
# runs tests/browser (puppeteer-core + the DevTools virtual authenticator +
# @simplewebauthn/browser; the hosted pages with axe-core) against it. The social
# sign-in test starts its own server and upstream (panva's oidc-provider, a package of
# tests/interop, whose packages it installs too).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh

if ! command -v chromium >/dev/null 2>&1; then
  echo "== Installing chromium (Debian)"
  apt-get -o DPkg::Lock::Timeout=600 install -y chromium >/dev/null 2>&1 || {
    apt-get -o DPkg::Lock::Timeout=600 update >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y chromium >/dev/null
  }
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
[ -d tests/interop/node_modules/oidc-provider ] ||
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
page_port=$(free_port)
other_port=$(free_port)
# The hosted pages are tested on the server's own origin, http://localhost:PORT (its
# public URL, a passkey origin too); their mail goes to the data directory's outbox.
TEST_SERVER_PORT=$(free_port)
secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')
start_test_server \
  GATEHOUSE_JWT_SECRET="$secret" \
  GATEHOUSE_RATE_LIMIT__ENABLED=false \
  GATEHOUSE_ARGON2__MEMORY_KIB=4096 \
  GATEHOUSE_PASSKEYS__RP_ID=localhost \
  GATEHOUSE_PASSKEYS__ORIGINS="http://localhost:$page_port,http://localhost:$TEST_SERVER_PORT" \
  GATEHOUSE_HTTP__PUBLIC_URL="http://localhost:$TEST_SERVER_PORT" \
  GATEHOUSE_MAIL__ENABLED=true

# A second server with accounts.require_mfa, for the enrolment a sign-in must make.
first=("$port" "$pid" "$data" "$log")
TEST_SERVER_PORT=$(free_port)
start_test_server \
  GATEHOUSE_JWT_SECRET="$secret" \
  GATEHOUSE_RATE_LIMIT__ENABLED=false \
  GATEHOUSE_ARGON2__MEMORY_KIB=4096 \
  GATEHOUSE_ACCOUNTS__REQUIRE_MFA=true \
  GATEHOUSE_HTTP__PUBLIC_URL="http://localhost:$TEST_SERVER_PORT"
strict_port=$port strict_pid=$pid strict_data=$data
port=${first[0]} pid=${first[1]} data=${first[2]} log=${first[3]}
trap 'kill "$pid" "$strict_pid" 2>/dev/null || true; wait "$pid" "$strict_pid" 2>/dev/null || true; rm -rf "$data" "$strict_data"' EXIT

profile=$(mktemp -d)
status=0
GATEHOUSE_URL="http://127.0.0.1:$port" PAGE_PORT="$page_port" OTHER_PORT="$other_port" \
UI_URL="http://localhost:$port" UI_REQUIRE_MFA_URL="http://localhost:$strict_port" OUTBOX="$data/outbox" CHROMIUM_PROFILE="$profile" \
GATEHOUSE_BIN="${GATEHOUSE_TEST_BIN:-target/debug/gatehouse}" \
  node --test --test-reporter=spec tests/browser/ || status=$?
rm -rf "$profile"
if grep -qF "$secret" "$log"; then
  echo "FAIL: the JWT secret appeared in the server log"; status=1
fi
[ "$status" -eq 0 ] || { echo "server log:"; tail -n 50 "$log"; }
exit "$status"
