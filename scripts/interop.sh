#!/usr/bin/env bash
# Starts the built server on a free port with a fresh SQLite database and a known
# secret, runs the Node interop tests against it, and stops it. The JWKS tests start
# servers of their own (EdDSA, ES256) from the same binary.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh
secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')
ownid_secret=$(head -c 32 /dev/urandom | base64)
start_test_server \
  GATEHOUSE_JWT_SECRET="$secret" \
  GATEHOUSE_OWNID__SHARED_SECRETS="$ownid_secret" \
  GATEHOUSE_RATE_LIMIT__ENABLED=false \
  GATEHOUSE_ARGON2__MEMORY_KIB=4096 \
  GATEHOUSE_HTTP__CORS_ORIGINS="http://site.example" \
  GATEHOUSE_SELFKEY__ATTRIBUTES='[{key="email",label="Email",schema="http://platform.selfkey.org/schema/attribute/email.json",required=true},{key="passport",label="Passport",schema="http://platform.selfkey.org/schema/attribute/passport.json"}]'

status=0
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
