#!/usr/bin/env bash
# Python's Authlib against the OpenID Connect provider (tests/interop/authlib_oidc.py):
# installs Authlib in a venv under target/ (as fuzz.sh does schemathesis), starts the
# built server with the provider on, and runs the tests against it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$PWD/target/authlib-venv
if ! "$venv/bin/python" -c 'import authlib, requests; assert authlib.__version__ == "1.6.5"' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "authlib==1.6.5" "requests==2.32.5"
fi
# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh
TEST_SERVER_PORT=$(free_port)
public_url="http://127.0.0.1:$TEST_SERVER_PORT"
start_test_server \
  GATEHOUSE_HTTP__PUBLIC_URL="$public_url" \
  GATEHOUSE_OIDC__ENABLED=true \
  GATEHOUSE_RATE_LIMIT__ENABLED=false \
  GATEHOUSE_ARGON2__MEMORY_KIB=4096
status=0
GATEHOUSE_PUBLIC_URL="$public_url" \
GATEHOUSE_BIN="${GATEHOUSE_TEST_BIN:-target/debug/gatehouse}" \
GATEHOUSE_DATA_DIR="$data" \
  "$venv/bin/python" tests/interop/authlib_oidc.py || status=$?
[ "$status" -eq 0 ] || { echo "server log:"; tail -n 50 "$log"; }
exit "$status"
