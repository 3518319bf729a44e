#!/usr/bin/env bash
# The test command of flexiapi-rs: starts the real services the tests use (PostgreSQL, Redis, ClickHouse,
# the Tansu Kafka-protocol broker — installing them when missing, all on 127.0.0.1), runs every test of the
# workspace in one `cargo test --workspace --all-targets`, stops the services, exits with cargo's status.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p flexiapi-auth`, `scripts/test.sh -- --nocapture`).
#
# The services live in their own state dir ($FLEXIAPI_TEST_STATE, default /tmp/flexiapi-test-run-<pid>), so a
# set started by hand with scripts/services.sh is left alone. The state dir is removed after a green run and
# kept (logs) after a red one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo is required" >&2; exit 1; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flexiapi-target}"
export FLEXIAPI_TEST_STATE="${FLEXIAPI_TEST_STATE:-/tmp/flexiapi-test-run-$$}"

status=1
cleanup() {
  scripts/services.sh stop >/dev/null 2>&1 || true
  if [ "$status" -eq 0 ]; then
    rm -rf "$FLEXIAPI_TEST_STATE"
  else
    echo "test.sh: service logs kept in $FLEXIAPI_TEST_STATE" >&2
  fi
}
trap cleanup EXIT

echo "== starting services (state in $FLEXIAPI_TEST_STATE)"
scripts/services.sh start >/dev/null
# shellcheck disable=SC1091
source "$FLEXIAPI_TEST_STATE/env.sh"

echo "== services up:"
scripts/services.sh status
echo "== environment:"
sed 's/^export /  /' "$FLEXIAPI_TEST_STATE/env.sh"

echo "== cargo test --workspace --all-targets $* (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
set +e
cargo test --workspace --all-targets "$@"
status=$?
set -e
echo "== cargo test exited with $status"
exit "$status"
