#!/usr/bin/env bash
# Adds a chat node to the running local stack (ops/stack): chat-N on the ports base + N - 1,
# with the same settings as the others. Once it has registered with status, the ring gives it
# its share of the users: the other nodes send those users (and only those) a move push within
# CHAT_RING_CHECK_MS, and their clients log in again here.
#   ops/add-chat-node.sh [N]     (default: one past the highest chat node that has a pid file)
# CHAT_TCP_PORT, CHAT_WS_PORT, CHAT_GRPC_PORT, METRICS_PORT in the environment override its ports.
set -euo pipefail
source "$(dirname "$0")/stack/env.sh"
mkdir -p "$STACK_LOG_DIR" "$STACK_RUN_DIR"
began=$(date +%s%N)

n=${1:-}
if [ -z "$n" ]; then
  n=$STACK_CHAT_NODES
  for file in "$STACK_RUN_DIR"/chat-*.pid; do
    [ -e "$file" ] || continue
    i=${file##*/chat-}; i=${i%.pid}
    [ "$i" -gt "$n" ] && n=$i
  done
  n=$((n + 1))
fi
[[ "$n" =~ ^[0-9]+$ ]] || { echo "[ops] N must be a number, got $n" >&2; exit 2; }
name="chat-$n"
pidfile="$STACK_RUN_DIR/$name.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "[ops] $name already runs (pid $(cat "$pidfile"))" >&2
  exit 1
fi
tcp=${CHAT_TCP_PORT:-$((STACK_CHAT_TCP_BASE + n - 1))}
ws=${CHAT_WS_PORT:-$((STACK_CHAT_WS_BASE + n - 1))}
grpc=${CHAT_GRPC_PORT:-$((STACK_CHAT_GRPC_BASE + n - 1))}
metrics=${METRICS_PORT:-$(stack_metrics_port "$name")}
log="$STACK_LOG_DIR/$name.log"
mapfile -t COMMON_ENV < <(stack_service_env)
mapfile -t TLS_ENV < <(stack_service_tls_env "$name")
# The log is appended to: remember where this run's lines begin.
offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
env "${COMMON_ENV[@]}" "${TLS_ENV[@]}" "CHAT_NODE_ID=$name" "CHAT_HOST=$STACK_HOST" "CHAT_TCP_PORT=$tcp" \
  "CHAT_WS_PORT=$ws" "CHAT_GRPC_PORT=$grpc" "METRICS_PORT=$metrics" \
  setsid nohup node ${STACK_NODE_ARGS:-} --import tsx "$STACK_ROOT/src/chat/main.ts" >>"$log" 2>&1 &
echo $! >"$pidfile"
echo "[ops] starting $name (pid $!, tcp $STACK_HOST:$tcp, log $log)"

# "chat node started" is logged after the first registration with status.
for _ in $(seq 1 450); do
  if tail -c +"$((offset + 1))" "$log" 2>/dev/null | grep -q '"chat node started"'; then
    echo "[ops] $name joined the ring after $((($(date +%s%N) - began) / 1000000)) ms; its users move to it now"
    exit 0
  fi
  kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "[ops] $name exited, see $log" >&2; rm -f "$pidfile"; exit 1; }
  sleep 0.2
done
echo "[ops] $name did not register within 90 s, see $log" >&2
exit 1
