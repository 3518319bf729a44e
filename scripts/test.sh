#!/usr/bin/env bash
# The test command of flexiapi-rs: starts the real services the tests use (PostgreSQL, Redis, ClickHouse,
# a Kafka-protocol broker — installing them when missing), runs every test of the workspace, stops the services.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p flexiapi-auth`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flexiapi-target}"
export FLEXIAPI_TEST_STATE="${FLEXIAPI_TEST_STATE:-/tmp/flexiapi-test-$$}"

command -v cargo >/dev/null || { echo "test.sh: cargo is required" >&2; exit 1; }

cleanup() { scripts/services.sh stop >/dev/null 2>&1 || true; rm -rf "$FLEXIAPI_TEST_STATE"; }
trap cleanup EXIT

echo "== starting services (state in $FLEXIAPI_TEST_STATE)"
scripts/services.sh start
# shellcheck disable=SC1091
source "$FLEXIAPI_TEST_STATE/env.sh"

echo "== cargo test"
cargo test --workspace --all-targets "$@"
