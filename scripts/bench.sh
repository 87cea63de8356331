#!/usr/bin/env bash
# Builds the release server and the benchmark driver, then runs every scenario of
# BENCHMARKS.md against a fresh server on a free loopback port. Arguments go to the
# driver: --duration SECS, --clients N, --scenarios 1,2,3, --postgres URL, --help.
set -euo pipefail
cd "$(dirname "$0")/.."
# Scenario 10's SMTP server.
# Debian's package is for Debian's Python, which may not be the first python3 on
# the PATH.
if ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
  apt-get -o DPkg::Lock::Timeout=600 install -y python3-aiosmtpd \
    || { apt-get update && apt-get -o DPkg::Lock::Timeout=600 install -y python3-aiosmtpd; }
fi
cargo build --release --bins -p gatehouse -p gatehouse-bench
exec target/release/gatehouse-bench --server target/release/gatehouse "$@"
