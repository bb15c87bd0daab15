#!/usr/bin/env bash
# Takes a chat node of the local stack out of service without dropping its users: SIGTERM
# makes the node leave the ring (status), push each of its sessions a move to the node that
# owns the user now, wait (up to CHAT_DRAIN_TIMEOUT_MS) for them to reconnect there, then stop.
#   ops/drain-chat-node.sh N     (chat-N)
set -euo pipefail
source "$(dirname "$0")/stack/env.sh"
n=${1:?usage: ops/drain-chat-node.sh N}
name="chat-$n"
pidfile="$STACK_RUN_DIR/$name.pid"
[ -f "$pidfile" ] || { echo "[ops] no $pidfile: $name was not started by the stack scripts" >&2; exit 1; }
pid=$(cat "$pidfile")
if ! kill -0 "$pid" 2>/dev/null; then
  echo "[ops] $name (pid $pid) is not running"
  rm -f "$pidfile"
  exit 0
fi
began=$(date +%s%N)
echo "[ops] draining $name (pid $pid)"
kill -TERM "$pid"
# The drain itself is bounded by CHAT_DRAIN_TIMEOUT_MS (default 15 s); closing takes a little more.
limit=$(( (${CHAT_DRAIN_TIMEOUT_MS:-15000} / 1000 + 30) * 5 ))
for _ in $(seq 1 "$limit"); do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    echo "[ops] $name drained and stopped after $((($(date +%s%N) - began) / 1000000)) ms"
    exit 0
  fi
  sleep 0.2
done
echo "[ops] $name did not stop in time; killing it (its users reconnect through gate)" >&2
kill -KILL "$pid" 2>/dev/null || true
rm -f "$pidfile"
exit 1
