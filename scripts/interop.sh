#!/usr/bin/env bash
# Starts maildev (a real SMTP server with an HTTP API, from tests/interop's npm
# packages) and the built server on free ports, the server with a fresh SQLite
# database, a known secret and mail through maildev; runs the Node interop tests
# against them, and stops both. The JWKS tests start servers of their own (EdDSA,
# ES256) from the same binary.
set -euo pipefail
cd "$(dirname "$0")/.."
# oidc.test.mjs writes the authorization codes /oauth/authorize would issue straight
# into the server's SQLite file, with Debian's sqlite3.
if ! command -v sqlite3 >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq sqlite3 >/dev/null
fi
# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh
secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')
ownid_secret=$(head -c 32 /dev/urandom | base64)
smtp_port=$(free_port)
maildev_port=$(free_port)
node tests/interop/node_modules/maildev/bin/maildev --ip 127.0.0.1 --smtp "$smtp_port" \
  --web "$maildev_port" --web-ip 127.0.0.1 --silent >/dev/null 2>&1 &
maildev_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$maildev_port/email" >/dev/null 2>&1 && break
  kill -0 "$maildev_pid" 2>/dev/null || { echo "maildev did not start"; exit 1; }
  sleep 0.1
done
TEST_SERVER_PORT=$(free_port)
public_url="http://127.0.0.1:$TEST_SERVER_PORT"
start_test_server \
  GATEHOUSE_HTTP__PUBLIC_URL="$public_url" \
  GATEHOUSE_MAIL__ENABLED=true \
  GATEHOUSE_MAIL__SMTP_URL="smtp://127.0.0.1:$smtp_port?tls=none" \
  GATEHOUSE_MAIL__FROM="Example <no-reply@example.test>" \
  GATEHOUSE_SIWE__DOMAINS="http://localhost:8080" \
  GATEHOUSE_JWT_SECRET="$secret" \
  GATEHOUSE_OWNID__SHARED_SECRETS="$ownid_secret" \
  GATEHOUSE_RATE_LIMIT__ENABLED=false \
  GATEHOUSE_ARGON2__MEMORY_KIB=4096 \
  GATEHOUSE_HTTP__CORS_ORIGINS="http://site.example" \
  GATEHOUSE_SELFKEY__ATTRIBUTES='[{key="email",label="Email",schema="http://platform.selfkey.org/schema/attribute/email.json",required=true},{key="passport",label="Passport",schema="http://platform.selfkey.org/schema/attribute/passport.json"}]'

trap 'kill "$pid" "$maildev_pid" 2>/dev/null || true; wait "$pid" "$maildev_pid" 2>/dev/null || true; rm -rf "$data"' EXIT

status=0
MAILDEV_URL="http://127.0.0.1:$maildev_port" \
GATEHOUSE_PUBLIC_URL="$public_url" \
GATEHOUSE_URL="http://127.0.0.1:$port" \
GATEHOUSE_BIN="${GATEHOUSE_TEST_BIN:-target/debug/gatehouse}" \
GATEHOUSE_JWT_SECRET="$secret" \
GATEHOUSE_OWNID_SECRET="$ownid_secret" \
  node --test --test-reporter=spec tests/interop/ || status=$?
if grep -qF "$secret" "$log"; then
  echo "FAIL: the JWT secret appeared in the server log"; status=1
fi
if grep -qF "$ownid_secret" "$log"; then
  echo "FAIL: the OwnID shared secret appeared in the server log"; status=1
fi
[ "$status" -eq 0 ] || { echo "server log:"; tail -n 50 "$log"; }
exit "$status"
