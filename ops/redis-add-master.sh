#!/usr/bin/env bash
# Grows the local stack's Redis Cluster by one master with one replica, and moves a fair share
# of the 16384 hash slots to it while clients keep working (keys move slot by slot with
# MIGRATE; a client that asks the old master for a moved key gets -MOVED/-ASK and ioredis
# follows it). Undo with --remove.
#   ops/redis-add-master.sh [MASTER_PORT REPLICA_PORT]          (default 7007 7008)
#   ops/redis-add-master.sh --remove [MASTER_PORT REPLICA_PORT]
# Steps (each is a plain redis-cli command, so the same works on real hosts):
#   1. start two empty cluster-enabled redis-server nodes;
#   2. redis-cli --cluster add-node NEW EXISTING                      (joins as a master, no slots)
#   3. redis-cli --cluster add-node REPLICA EXISTING --cluster-slave --cluster-master-id ID
#   4. redis-cli --cluster rebalance EXISTING --cluster-use-empty-masters   (moves slots to it)
#   5. redis-cli --cluster check EXISTING                              (every slot covered, no open slots)
# --remove: rebalance with --cluster-weight ID=0 (empties the master), then del-node both.
set -euo pipefail
source "$(dirname "$0")/stack/env.sh"
remove=0
if [ "${1:-}" = "--remove" ]; then remove=1; shift; fi
master=${1:-7007}
replica=${2:-7008}
seed="127.0.0.1:${STACK_REDIS_PORTS%% *}"
mkdir -p "$STACK_LOG_DIR" "$STACK_RUN_DIR"
# One change of the stack at a time (up.sh and down.sh take the same lock; the servers started
# below get `9>&-`, or they would hold it for as long as they run).
exec 9>"$STACK_DIR/up.lock"
flock 9
began=$(date +%s%N)
say() { echo "[redis] $*"; }
ms() { echo $((($(date +%s%N) - began) / 1000000)); }
node_id() { redis-cli -p "$1" cluster myid; }
# After a membership change the nodes gossip for a moment before they agree; resharding
# before that fails ("Nodes don't agree about configuration").
# A reshard that was interrupted leaves slots "open" (migrating/importing): close them first.
fix_open_slots() {
  local report
  report=$(redis-cli --cluster check "$seed" 2>&1 || true)
  if grep -q 'slots are open' <<<"$report"; then
    say "closing slots left open by an interrupted reshard (redis-cli --cluster fix)"
    redis-cli --cluster fix "$seed" --cluster-yes >>"$STACK_LOG_DIR/redis-reshard.log" 2>&1
  fi
}
wait_agree() { # [port that must report cluster_state:ok too]
  for _ in $(seq 1 150); do
    # Its exit status is 0 even when the nodes disagree: read what it says. A new master that
    # does not see the whole cluster yet answers CLUSTERDOWN to the slot migrations.
    local report state
    report=$(redis-cli --cluster check "$seed" 2>&1 || true)
    state=$([ -z "${1:-}" ] || redis-cli -p "$1" cluster info 2>&1 || true)
    if ! grep -q '\[ERR\]' <<<"$report" && { [ -z "${1:-}" ] || grep -q '^cluster_state:ok' <<<"$state"; }; then
      return 0
    fi
    sleep 0.2
  done
  redis-cli --cluster check "$seed" >&2
  return 1
}

if [ $remove = 1 ]; then
  id=$(node_id "$master")
  wait_agree
  fix_open_slots
  say "moving every slot off $master ($id)"
  redis-cli --cluster rebalance "$seed" --cluster-weight "$id=0" --cluster-yes >>"$STACK_LOG_DIR/redis-reshard.log" 2>&1
  rid=$(node_id "$replica")
  wait_agree
  # The replica may never have joined (an add that stopped half-way).
  redis-cli --cluster del-node "$seed" "$rid" >>"$STACK_LOG_DIR/redis-reshard.log" 2>&1 || true
  redis-cli --cluster del-node "$seed" "$id" >>"$STACK_LOG_DIR/redis-reshard.log" 2>&1
  for port in "$master" "$replica"; do
    # Out of the cluster now: stop it, and remove its files so that it could join again later.
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 || break; sleep 0.1; done
    rm -f "$STACK_DIR/redis-$port/nodes-$port.conf" "$STACK_DIR/redis-$port/dump.rdb" "$STACK_RUN_DIR/redis-$port.pid"
  done
  wait_agree
  redis-cli --cluster check "$seed" >>"$STACK_LOG_DIR/redis-reshard.log" 2>&1
  say "removed $master and $replica after $(ms) ms"
  exit 0
fi

for port in "$master" "$replica"; do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then say "something already listens on $port" >&2; exit 1; fi
  dir="$STACK_DIR/redis-$port"
  mkdir -p "$dir"
  rm -f "$dir/nodes-$port.conf" "$dir/dump.rdb"
  redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
    --cluster-node-timeout "$STACK_REDIS_NODE_TIMEOUT_MS" --dir "$dir" --daemonize yes \
    --pidfile "$STACK_RUN_DIR/redis-$port.pid" --logfile "$STACK_LOG_DIR/redis-$port.log" --save "" --appendonly no 9>&-
done
for port in "$master" "$replica"; do
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
wait_agree
say "adding master 127.0.0.1:$master"
redis-cli --cluster add-node "127.0.0.1:$master" "$seed" >>"$STACK_LOG_DIR/redis-reshard.log" 2>&1
id=$(node_id "$master")
# The new master must be known cluster-wide before a replica can attach to it (add-node
# refuses while the nodes disagree).
wait_agree "$master"
say "adding replica 127.0.0.1:$replica of $id"
redis-cli --cluster add-node "127.0.0.1:$replica" "$seed" --cluster-slave --cluster-master-id "$id" \
  >>"$STACK_LOG_DIR/redis-reshard.log" 2>&1
wait_agree "$master"
fix_open_slots
say "rebalancing hash slots onto the new master"
redis-cli --cluster rebalance "$seed" --cluster-use-empty-masters --cluster-yes >>"$STACK_LOG_DIR/redis-reshard.log" 2>&1
# Right after the last slot moved the nodes may still disagree for a moment (gossip).
wait_agree "$master"
redis-cli --cluster check "$seed" >>"$STACK_LOG_DIR/redis-reshard.log" 2>&1
slots=$(redis-cli -p "$master" cluster nodes | awk -v id="$id" '$1 == id { n = 0; for (i = 9; i <= NF; i++) { split($i, r, "-"); n += (r[2] == "" ? 1 : r[2] - r[1] + 1) } print n }')
say "master $master owns $slots hash slots, replica $replica follows it; took $(ms) ms"
