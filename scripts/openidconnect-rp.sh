#!/usr/bin/env bash
# The Rust `openidconnect` crate as a relying party of the OpenID Connect provider
# (tests/interop/openidconnect-rp, a crate of its own outside the workspace, with its
# own Cargo.lock): builds it (debug, into target/openidconnect-rp), starts the built
# server with the provider on, and runs it against the server: discovery, the code flow
# with PKCE through the hosted sign-in form and consent (a cookie jar, no browser), the
# crate's ID token checks (RS256 and ES256 clients), UserInfo, refresh, introspection,
# a replayed code, revocation.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet --manifest-path tests/interop/openidconnect-rp/Cargo.toml \
  --target-dir target/openidconnect-rp
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
  target/openidconnect-rp/debug/gatehouse-openidconnect-rp || status=$?
[ "$status" -eq 0 ] || { echo "server log:"; tail -n 50 "$log"; }
exit "$status"
