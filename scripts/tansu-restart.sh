#!/usr/bin/env bash
# Stops and starts again the Tansu broker that scripts/services.sh started: same port, same S3 storage
# (the bucket in the moto server, which keeps running), so what the broker had acknowledged is still there.
# It is the command in FLEXIAPI_TEST_TANSU_RESTART_CMD; it finds the broker through $FLEXIAPI_TEST_STATE
# (default /tmp/flexiapi-test), which env.sh exports.
#
#   tansu-restart.sh            # graceful restart: SIGTERM, wait for the exit, start, wait until it accepts
#   tansu-restart.sh kill       # crash restart: SIGKILL, then start
#   tansu-restart.sh stop       # stop only (SIGTERM); `start` brings it back
#   tansu-restart.sh start      # start only (no-op when it already runs)
#
# Exits 0 once the broker accepts connections again on the same 127.0.0.1 port; non-zero (with the tail of
# $STATE/tansu.log) otherwise.
set -euo pipefail

STATE="${FLEXIAPI_TEST_STATE:-/tmp/flexiapi-test}"
[ -f "$STATE/tansu.env" ] || { echo "tansu-restart: no $STATE/tansu.env: run scripts/services.sh start" >&2; exit 1; }
# shellcheck disable=SC1091
source "$STATE/tansu.env" # TANSU_BIN, TANSU_PORT, TANSU_S3_URL, TANSU_BUCKET
PIDFILE="$STATE/tansu.pid"
LOG="$STATE/tansu.log"

accepting() { (exec 3<>"/dev/tcp/127.0.0.1/$TANSU_PORT") 2>/dev/null; }

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

stop() { # signal
  if running; then
    local pid
    pid=$(cat "$PIDFILE")
    kill -"$1" "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  for _ in $(seq 1 50); do # the port is free again
    accepting || return 0
    sleep 0.2
  done
  echo "tansu-restart: something still listens on 127.0.0.1:$TANSU_PORT" >&2
  return 1
}

start() {
  running && accepting && return 0
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
  export AWS_ENDPOINT="$TANSU_S3_URL" AWS_ALLOW_HTTP=true
  (
    cd "$STATE"
    setsid "$TANSU_BIN" broker \
      --listener-url "tcp://127.0.0.1:$TANSU_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" \
      --storage-engine "s3://$TANSU_BUCKET/" \
      </dev/null >>"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
  )
  for _ in $(seq 1 150); do
    if accepting; then
      running && return 0
      break
    fi
    running || break
    sleep 0.2
  done
  echo "tansu-restart: the broker did not start on 127.0.0.1:$TANSU_PORT; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2
  return 1
}

case "${1:-restart}" in
  restart) stop TERM && start ;;
  kill) stop KILL && start ;;
  stop) stop TERM ;;
  start) start ;;
  *)
    echo "usage: $0 [restart|kill|stop|start]" >&2
    exit 2
    ;;
esac
