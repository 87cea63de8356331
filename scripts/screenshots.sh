#!/usr/bin/env bash
# Makes the README's screenshots of the hosted pages again (docs/screenshots/, light
# and dark): starts the built server on a fresh data directory and photographs its
# pages in Debian's chromium (tests/browser/screenshots.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh
command -v chromium >/dev/null 2>&1 || apt-get -o DPkg::Lock::Timeout=600 install -y chromium >/dev/null
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
TEST_SERVER_PORT=$(free_port)
start_test_server \
  GATEHOUSE_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')" \
  GATEHOUSE_ARGON2__MEMORY_KIB=4096 \
  GATEHOUSE_HTTP__PUBLIC_URL="http://localhost:$TEST_SERVER_PORT" \
  GATEHOUSE_PASSKEYS__ORIGINS="http://localhost:$TEST_SERVER_PORT"
UI_URL="http://localhost:$port" SCREENSHOTS="$PWD/docs/screenshots" node tests/browser/screenshots.mjs
echo "docs/screenshots: written"
