#!/usr/bin/env bash
# Installs oathtool (Debian's package, from OATH Toolkit) when it is missing: the
# second-factor tests (tests/api/mfa.rs) take TOTP codes from it, a generator
# independent of the server's.
set -euo pipefail
if command -v oathtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq oathtool >/dev/null
command -v oathtool
