#!/usr/bin/env bash
# Stops what ops/stack/up.sh started (by its pid files), nothing else: the machine's own
# MariaDB (3306) and Redis (6379) keep running. MariaDB data dirs are kept; the Redis
# cluster's config is removed so the next up builds a fresh cluster.
#   --services   only the services (status, verify, gates, chat nodes); databases, Redis and S3 stay
set -euo pipefail
source "$(dirname "$0")/env.sh"
[ -d "$STACK_RUN_DIR" ] || { echo "[stack] nothing to stop"; exit 0; }
exec 9>"$STACK_DIR/up.lock"
flock 9

stop_pid() { # pidfile name
  local file=$1 name=$2 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    echo "[stack] stopping $name ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# Every chat node with a pid file, also ones added after up (ops scripts may add more).
for file in "$STACK_RUN_DIR"/chat-*.pid; do
  [ -e "$file" ] && stop_pid "$file" "$(basename "$file" .pid)"
done
for name in gate-2 gate verify status; do stop_pid "$STACK_RUN_DIR/$name.pid" "$name"; done
if [ "${1:-}" = "--services" ]; then echo "[stack] services down"; exit 0; fi
for port in $STACK_REDIS_PORTS; do
  stop_pid "$STACK_RUN_DIR/redis-$port.pid" "redis $port"
  rm -f "$STACK_DIR/redis-$port/nodes-$port.conf" "$STACK_DIR/redis-$port/dump.rdb"
done
for port in $STACK_MYSQL_EXTRA_PORTS; do stop_pid "$STACK_RUN_DIR/mariadb-$port.pid" "mariadbd $port"; done
# (moto keeps its buckets in memory: the next up makes the bucket again.)
stop_pid "$STACK_RUN_DIR/s3.pid" "moto_server (S3)"
echo "[stack] down"
