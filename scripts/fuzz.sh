#!/usr/bin/env bash
# Schema conformance fuzzing: starts the built server on a free port with a fresh
# SQLite database, mail on (written as files) and the rate limits off, and runs
# schemathesis against its own /openapi.json: a bounded number of generated requests
# per route, failing on any 5xx, any undocumented status or content type, and any
# response that does not match its documented schema, and any authenticated route that
# answers without its credentials (ignored_auth). scripts/fuzz_hooks.py gives every
# authenticated route real credentials (account, challenge and wallet tokens, OwnID
# signatures, refresh tokens), so the cases get past the door.
#   FUZZ_EXAMPLES  cases per route and phase (default 100)
#   FUZZ_SEED      the generator's seed (default fixed, so a CI run is reproducible)
#   FUZZ_WORKERS   schemathesis worker threads (default 1: with 2, CPython 3.11's
#                  ast.parse, which hypothesis calls from both threads, fails with
#                  "AST constructor recursion depth mismatch"; one is also no slower)
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.32.5
venv=$PWD/target/fuzz-venv
examples=${FUZZ_EXAMPLES:-100}
seed=${FUZZ_SEED:-20240605}

if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $version" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

ownid_secret=$(head -c 32 /dev/urandom | base64)
# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh
start_test_server \
  GATEHOUSE_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')" \
  GATEHOUSE_RATE_LIMIT__ENABLED=false \
  GATEHOUSE_MAIL__ENABLED=true \
  GATEHOUSE_HTTP__PUBLIC_URL=https://gatehouse.example \
  GATEHOUSE_OWNID__SHARED_SECRETS="$ownid_secret" \
  GATEHOUSE_SELFKEY__WALLET_TOKEN_TTL_SECS=3600 \
  GATEHOUSE_ARGON2__MEMORY_KIB=1024 \
  GATEHOUSE_ARGON2__ITERATIONS=1

# The credentials scripts/fuzz_hooks.py hands out: a password account, and wallets
# signed in by ethers (tests/interop's packages).
curl -fsS "http://127.0.0.1:$port/auth/register" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","password":"fuzz-password"}' >/dev/null
[ -d tests/interop/node_modules ] || (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
export FUZZ_BASE_URL="http://127.0.0.1:$port" FUZZ_EMAIL=fuzz@example.com FUZZ_PASSWORD=fuzz-password
export FUZZ_OWNID_SECRET="$ownid_secret"
FUZZ_WALLET_TOKENS=$(node tests/interop/wallet-tokens.mjs "$FUZZ_BASE_URL" 20)
# Wallets of their own for the workers' accounts to link (no other route gets them).
FUZZ_LINK_WALLETS=$(node tests/interop/wallet-tokens.mjs "$FUZZ_BASE_URL" 4)
export FUZZ_WALLET_TOKENS FUZZ_LINK_WALLETS
export SCHEMATHESIS_HOOKS=fuzz_hooks PYTHONPATH="$PWD/scripts"

status=0
# From the scratch directory, where schemathesis leaves its cache.
(cd "$data" && "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth \
  --max-examples "$examples" \
  --seed "$seed" \
  --workers "${FUZZ_WORKERS:-1}" \
  --request-timeout 30 \
  --generation-database none \
  --no-color ${FUZZ_ARGS:-}) || status=$?
[ "$status" -eq 0 ] || { echo "server log:"; tail -n 50 "$log"; }
exit "$status"
