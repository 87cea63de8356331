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
run_against_provider "$venv/bin/python" tests/interop/authlib_oidc.py
