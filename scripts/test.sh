#!/usr/bin/env bash
# Runs every test: the Rust suite (unit, HTTP integration on SQLite and PostgreSQL,
# process tests), then the Node interop tests (jwt-simple, ethers, openid-client,
# oauth4webapi, social sign-in through panva's oidc-provider), Python's Authlib and the
# Rust openidconnect crate against the OpenID Connect provider, and the browser tests
# (passkeys, the hosted pages, "Continue with …" and apps signing in through the
# provider with openid-client and oauth4webapi, in chromium) against the real server. Sets up what it needs:
# PostgreSQL (if installed), the npm packages, Debian's oathtool and chromium if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${GATEHOUSE_TEST_POSTGRES_URL:-}" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
  GATEHOUSE_TEST_POSTGRES_URL=$(scripts/postgres.sh)
  export GATEHOUSE_TEST_POSTGRES_URL
fi
if [ -n "${GATEHOUSE_TEST_POSTGRES_URL:-}" ]; then
  echo "PostgreSQL tests: on"
else
  echo "PostgreSQL tests: off (no PostgreSQL found; set GATEHOUSE_TEST_POSTGRES_URL)"
fi

# The second factor's tests take their TOTP codes from oathtool (Debian's package).
scripts/oathtool.sh >/dev/null

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

echo "== Node interop tests against the real server"
(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
cargo build --bin gatehouse
scripts/interop.sh

echo "== Python's Authlib against the OpenID Connect provider"
scripts/authlib.sh

echo "== The Rust openidconnect crate as a relying party (its own crate, outside the workspace)"
scripts/openidconnect-rp.sh

echo "== README's token-verification snippets (jwt-simple, jose, PyJWT, jsonwebtoken) against a live token"
scripts/verify-token.sh

echo "== README's nginx example in front of the server (Debian's nginx, installed if missing)"
scripts/nginx.sh

echo "== Browser tests: passkeys (DevTools virtual authenticator), the hosted pages, social sign-in and OpenID Connect apps in chromium"
scripts/browser.sh

if [ -n "${GATEHOUSE_TEST_POSTGRES_URL:-}" ]; then
  echo "== Cluster: 3 nodes behind HAProxy on one PostgreSQL, one SIGKILLed mid-traffic"
  scripts/cluster.sh test
fi
