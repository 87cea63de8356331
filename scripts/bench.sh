#!/usr/bin/env bash
# Builds the release server and the benchmark driver, then runs every scenario of
# BENCHMARKS.md against a fresh server on a free loopback port. Arguments go to the
# driver: --duration SECS, --clients N, --scenarios 1,2,3, --postgres URL, --help.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins -p gatehouse -p gatehouse-bench
exec target/release/gatehouse-bench --server target/release/gatehouse "$@"
