#!/usr/bin/env bash
# Runs README's token-verification snippets (docs/verify-token/, the Rust one a project of its own)
# against a live token from the built server: each must accept it and print its `sub`,
# and reject it with a wrong expected issuer, and reject an expired and a tampered
# token. Needs the npm packages (tests/interop: npm ci) and sets up a venv with PyJWT.
set -euo pipefail
cd "$(dirname "$0")/.."
pyjwt_version=2.10.1
venv=$PWD/target/verify-venv
if [ "$("$venv/bin/python" -c 'import jwt; print(jwt.__version__)' 2>/dev/null)" != "$pyjwt_version" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "PyJWT==$pyjwt_version"
fi

# The Rust snippet builds as an integrator's project would, with its own lock file.
rust_target=$PWD/target/verify-token-rust
(cd docs/verify-token/rust && CARGO_TARGET_DIR="$rust_target" cargo build -q --locked)

secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')
issuer=https://auth.verify.test
# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh
start_test_server \
  GATEHOUSE_JWT_SECRET="$secret" \
  GATEHOUSE_ISSUER="$issuer" \
  GATEHOUSE_ARGON2__MEMORY_KIB=1024 \
  GATEHOUSE_ARGON2__ITERATIONS=1

token=$(curl -fsS "http://127.0.0.1:$port/auth/register" -H 'content-type: application/json' \
  -d '{"email":"verify@example.com","password":"verify-password"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
sub=$(python3 -c 'import base64, json, sys
p = sys.argv[1].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["sub"])' "$token")
# The same claims an hour in the past, signed with the same secret.
expired=$(python3 - "$token" "$secret" <<'PY'
import base64, hashlib, hmac, json, sys
token, secret = sys.argv[1], sys.argv[2]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header, payload, _ = token.split(".")
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
claims["iat"] -= 7200
claims["exp"] -= 7200
body = header + "." + b64(json.dumps(claims).encode())
print(body + "." + b64(hmac.new(secret.encode(), body.encode(), hashlib.sha512).digest()))
PY
)
# The signature's first character changed (the last one carries unused bits, which
# lenient decoders ignore).
signature=${token##*.}
tampered="${token%.*}.$([ "${signature:0:1}" = A ] && echo B || echo A)${signature:1}"

# The Node snippets resolve their packages from tests/interop/node_modules.
scratch=tests/interop/.verify-token
rm -rf "$scratch" && mkdir -p "$scratch"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data" "$scratch"' EXIT
cp docs/verify-token/jwt-simple.cjs docs/verify-token/jose.mjs "$scratch/"

passed=0 failed=0
check() { # name expect(accept|reject) issuer token command…
  local name=$1 expect=$2 iss=$3 tok=$4 out status=0
  shift 4
  out=$(GATEHOUSE_JWT_SECRET="$secret" GATEHOUSE_ISSUER="$iss" "$@" "$tok" 2>&1) || status=$?
  if { [ "$expect" = accept ] && [ "$status" -eq 0 ] && [ "$(head -n1 <<<"$out")" = "$sub" ]; } ||
     { [ "$expect" = reject ] && [ "$status" -ne 0 ] && grep -q rejected <<<"$out"; }; then
    echo "ok: $name"; passed=$((passed + 1))
  else
    echo "FAIL: $name (exit $status): $out"; failed=$((failed + 1))
  fi
}
for snippet in "jwt-simple:node $scratch/jwt-simple.cjs" "jose:node $scratch/jose.mjs" \
  "PyJWT:$venv/bin/python docs/verify-token/pyjwt.py" \
  "jsonwebtoken:$rust_target/debug/verify-gatehouse-token"; do
  name=${snippet%%:*}
  read -r -a cmd <<<"${snippet#*:}"
  check "$name accepts a live token" accept "$issuer" "$token" "${cmd[@]}"
  check "$name rejects another issuer's" reject "https://elsewhere.test" "$token" "${cmd[@]}"
  check "$name rejects an expired token" reject "$issuer" "$expired" "${cmd[@]}"
  check "$name rejects a tampered token" reject "$issuer" "$tampered" "${cmd[@]}"
done
echo "verify-token: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
