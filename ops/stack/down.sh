#!/usr/bin/env bash
# Stops what ops/stack/up.sh started (by its pid files), nothing else: the machine's own
# MariaDB (3306) and Redis (6379) keep running. MariaDB data dirs are kept; the Redis
# cluster's config is removed so the next up builds a fresh cluster.
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

for i in $(seq "$STACK_CHAT_NODES" -1 1); do stop_pid "$STACK_RUN_DIR/chat-$i.pid" "chat-$i"; done
for name in gate verify status; do stop_pid "$STACK_RUN_DIR/$name.pid" "$name"; done
for port in $STACK_REDIS_PORTS; do
  stop_pid "$STACK_RUN_DIR/redis-$port.pid" "redis $port"
  rm -f "$STACK_DIR/redis-$port/nodes-$port.conf" "$STACK_DIR/redis-$port/dump.rdb"
done
for port in $STACK_MYSQL_EXTRA_PORTS; do stop_pid "$STACK_RUN_DIR/mariadb-$port.pid" "mariadbd $port"; done
echo "[stack] down"
