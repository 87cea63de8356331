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
run_against_provider target/openidconnect-rp/debug/gatehouse-openidconnect-rp
