#!/usr/bin/env bash
# Starts the local multi-shard stack on loopback: the machine's MariaDB (3306) plus extra
# mariadbd instances, a 6-node Redis Cluster, an S3 server (moto_server), then status, verify,
# two gates on one bucket (FILE_STORE=s3) and the chat nodes with the multi-shard settings. Idempotent: what already runs is kept. Everything it starts
# has a pid file in .stack/run and a log in .stack/logs; ops/stack/down.sh stops exactly that.
#   --infra      only the databases, the Redis Cluster and the S3 server (what the storage tests need)
#   --services   only the services that do not run (fault injection restarting what it stopped):
#                the databases and Redis are left as they are, even when they look unwell
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$STACK_ROOT"
INFRA_ONLY=0
[ "${1:-}" = "--infra" ] && INFRA_ONLY=1
SERVICES_ONLY=0
[ "${1:-}" = "--services" ] && SERVICES_ONLY=1
began=$(date +%s)
mkdir -p "$STACK_LOG_DIR" "$STACK_RUN_DIR"
# Test files and people may run this at once: one at a time. (Whatever is started below gets
# `9>&-`, or it would hold the lock for as long as it runs.)
exec 9>"$STACK_DIR/up.lock"
flock 9

say() { echo "[stack] $*"; }
die() { echo "[stack] $*" >&2; exit 1; }

wait_until() { # seconds, description, command...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq 1 $((seconds * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "timed out after ${seconds}s waiting for $what"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_missing() {
  local need=()
  command -v mariadbd >/dev/null || need+=(mariadb-server)
  command -v mariadb-install-db >/dev/null || need+=(mariadb-server)
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v redis-cli >/dev/null || need+=(redis-tools)
  command -v curl >/dev/null || need+=(curl)
  command -v flock >/dev/null || need+=(util-linux)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >"$STACK_LOG_DIR/apt.log" 2>&1
  fi
}

mysql_ping() { mariadb-admin --no-defaults -h127.0.0.1 -P"$1" -uroot --connect-timeout=2 ping; }

# An instance left running by a checkout that was deleted since (its data folder is gone, so it
# cannot create a database) is stopped, so that this checkout starts its own.
stop_orphaned_mariadb() {
  local port=$1 datadir
  datadir=$(mariadb --no-defaults -h127.0.0.1 -P"$port" -uroot -N -e 'SELECT @@datadir' 2>/dev/null) || return 0
  [ -d "$datadir/mysql" ] && return 0
  say "MariaDB on $port runs on a deleted folder ($datadir): stopping it"
  mariadb-admin --no-defaults -h127.0.0.1 -P"$port" -uroot shutdown >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do mysql_ping "$port" >/dev/null 2>&1 || return 0; sleep 0.1; done
}

start_mariadb() {
  local port=$1 dir="$STACK_DIR/mariadb-$port" pid="$STACK_RUN_DIR/mariadb-$port.pid"
  stop_orphaned_mariadb "$port"
  if mysql_ping "$port" >/dev/null 2>&1; then return 0; fi
  if [ ! -d "$dir/data/mysql" ]; then
    say "initialising MariaDB data dir for port $port"
    mkdir -p "$dir"
    # "normal" root authentication: root with an empty password, as the machine's 3306 has.
    mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
      --auth-root-authentication-method=normal --skip-test-db >"$STACK_LOG_DIR/mariadb-$port-install.log" 2>&1 ||
      die "mariadb-install-db failed, see $STACK_LOG_DIR/mariadb-$port-install.log"
  fi
  say "starting mariadbd on $port"
  setsid nohup mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mariadbd.sock" --port="$port" \
    --bind-address=127.0.0.1 --pid-file="$pid" --log-error="$STACK_LOG_DIR/mariadb-$port.log" \
    --user="$(id -un)" --innodb-buffer-pool-size=64M --max-connections=500 --skip-name-resolve \
    --character-set-server=utf8mb4 >/dev/null 2>&1 9>&- &
}

redis_ping() { redis-cli -p "$1" ping | grep -q PONG; }

# Likewise a Redis node whose folder is gone: it could not save its cluster config.
stop_orphaned_redis() {
  local port=$1 dir
  redis_ping "$port" >/dev/null 2>&1 || return 0
  # Empty when the folder is gone (getcwd fails).
  dir=$(redis-cli -p "$port" config get dir 2>/dev/null | sed -n 2p)
  [ -n "$dir" ] && [ -d "$dir" ] && return 0
  say "redis on $port runs in a deleted folder: stopping it"
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do redis_ping "$port" >/dev/null 2>&1 || return 0; sleep 0.1; done
}

start_redis_node() {
  local port=$1 dir="$STACK_DIR/redis-$port"
  stop_orphaned_redis "$port"
  if redis_ping "$port" >/dev/null 2>&1; then return 0; fi
  mkdir -p "$dir"
  # A replica keeps the RDB of its last full sync on disk; a node that is no cluster member yet
  # must start empty, or `--cluster create` refuses it.
  [ -f "$dir/nodes-$port.conf" ] || rm -f "$dir/dump.rdb"
  say "starting redis cluster node on $port"
  redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
    --cluster-node-timeout "$STACK_REDIS_NODE_TIMEOUT_MS" --dir "$dir" --daemonize yes \
    --pidfile "$STACK_RUN_DIR/redis-$port.pid" --logfile "$STACK_LOG_DIR/redis-$port.log" \
    --save "" --appendonly no 9>&-
}

# Sets CLUSTER_WHY to the first check that failed, so a cluster that never heals says why.
CLUSTER_WHY=""
cluster_ok_everywhere() {
  local port known
  for port in $STACK_REDIS_PORTS; do
    redis-cli -p "$port" cluster info | grep -q '^cluster_state:ok' || { CLUSTER_WHY="$port: cluster_state not ok"; return 1; }
    # At least these nodes: ops/redis-add-master.sh may have grown the cluster.
    known=$(redis-cli -p "$port" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')
    [ "${known:-0}" -ge "$(echo $STACK_REDIS_PORTS | wc -w)" ] || { CLUSTER_WHY="$port knows ${known:-0} nodes"; return 1; }
  done
  # Every master has its replica (a failover needs one), as seen from the first node, and no
  # member is down for good (an extra master left by an interrupted ops/redis-add-master.sh).
  local first=${STACK_REDIS_PORTS%% *}
  # (One of the stack's own nodes flagged fail is one restarting: gossip clears that.)
  if redis-cli -p "$first" cluster nodes | awk -v ours=" $STACK_REDIS_PORTS " '
    $3 ~ /(^|,)fail(,|$)/ { split($2, a, "[:@]"); if (index(ours, " " a[2] " ") == 0) found = 1 }
    END { exit !found }'; then
    CLUSTER_WHY="a node that is not the stack's is flagged fail"
    return 1
  fi
  # (Flags read "myself,slave" on the line of the node asked, so match the flag, not the word.)
  [ "$(redis-cli -p "$first" cluster nodes | awk '$3 ~ /(^|,)slave(,|$)/' | wc -l)" -ge "$(($(echo $STACK_REDIS_PORTS | wc -w) / 2))" ] ||
    { CLUSTER_WHY="a master has no replica"; return 1; }
}

# A master of ours that came back right after its replica took over sometimes stays a master
# without slots instead of turning replica. Make it the replica of a master that has none, as the
# cluster was built, rather than resetting the cluster (which wipes every key).
reattach_empty_masters() {
  local first=${STACK_REDIS_PORTS%% *} nodes port id lonely
  nodes=$(redis-cli -p "$first" cluster nodes 2>/dev/null) || return 0
  for port in $STACK_REDIS_PORTS; do
    # Fields: id addr flags master ping pong epoch link [slots...]: no slot field, no slots.
    id=$(awk -v p=":$port@" 'index($2, p) && $3 ~ /master/ && $3 !~ /fail/ && NF == 8 { print $1 }' <<<"$nodes")
    [ -n "$id" ] || continue
    lonely=$(awk '$3 ~ /slave/ { has[$4] = 1 } $3 ~ /master/ && $3 !~ /fail/ && NF > 8 { m[$1] = 1 }
      END { for (k in m) if (!(k in has)) { print k; exit } }' <<<"$nodes")
    [ -n "$lonely" ] || continue
    say "redis $port is a master without slots: making it the replica of $lonely"
    redis-cli -p "$port" cluster replicate "$lonely" >/dev/null 2>&1 || true
    nodes=$(redis-cli -p "$first" cluster nodes 2>/dev/null) || return 0
  done
}

# The cluster as each node sees it, for the log of a cluster that would not heal.
save_cluster_views() {
  local port
  for port in $STACK_REDIS_PORTS; do
    echo "== $port"; redis-cli -p "$port" cluster info 2>&1 | grep -E 'state|known|epoch'; redis-cli -p "$port" cluster nodes 2>&1
  done >"$1"
}

# Forgets the cluster on one node and empties it. The services may still be writing: a key that
# lands between FLUSHALL and the reset makes a master refuse the reset, so repeat until it holds.
reset_redis_node() {
  local port=$1
  for _ in $(seq 1 50); do
    redis-cli -p "$port" flushall >/dev/null 2>&1 || true
    redis-cli -p "$port" cluster reset hard >/dev/null 2>&1 || true
    [ "$(redis-cli -p "$port" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" = "1" ] &&
      [ "$(redis-cli -p "$port" dbsize)" = "0" ] && return 0
    sleep 0.1
  done
  die "redis on $port would not reset (cluster reset hard)"
}

create_cluster() {
  if cluster_ok_everywhere; then return 0; fi
  local port fresh=1
  for port in $STACK_REDIS_PORTS; do
    [ "$(redis-cli -p "$port" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" = "1" ] || fresh=0
  done
  if [ $fresh = 0 ]; then
    # Nodes that knew each other (a restart, a master back after a failover): give them time to
    # agree again before starting over, which wipes every key. Gossip is slow on a busy machine.
    local deadline=$(($(date +%s) + STACK_REDIS_HEAL_S)) i=0
    while [ "$(date +%s)" -lt "$deadline" ]; do
      cluster_ok_everywhere && return 0
      i=$((i + 1))
      [ $((i % 10)) = 0 ] && reattach_empty_masters
      sleep 0.2
    done
    save_cluster_views "$STACK_LOG_DIR/redis-cluster-unhealthy.log"
    say "redis cluster is not healthy after ${STACK_REDIS_HEAL_S}s ($CLUSTER_WHY; each node's view is in $STACK_LOG_DIR/redis-cluster-unhealthy.log): resetting it"
    for port in $STACK_REDIS_PORTS; do reset_redis_node "$port"; done
  fi
  local nodes=()
  for port in $STACK_REDIS_PORTS; do nodes+=("127.0.0.1:$port"); done
  say "creating the redis cluster (${#nodes[@]} nodes, 1 replica per master)"
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$STACK_LOG_DIR/redis-cluster-create.log" 2>&1 ||
    die "redis-cli --cluster create failed: $(grep -E 'ERR|rror' "$STACK_LOG_DIR/redis-cluster-create.log" | head -3) (see $STACK_LOG_DIR/redis-cluster-create.log)"
}

# moto_server (pip package moto[server]): on this machine's image under pyenv's shims.
MOTO_SERVER="${STACK_MOTO_SERVER:-$(command -v moto_server || echo /root/.pyenv/shims/moto_server)}"
s3_url() { echo "http://127.0.0.1:$STACK_S3_PORT"; }
s3_ping() { curl -fsS -o /dev/null "$(s3_url)/"; }

start_s3() {
  if s3_ping >/dev/null 2>&1; then return 0; fi
  [ -x "$MOTO_SERVER" ] ||
    die "moto_server not found (looked for $MOTO_SERVER): install it with 'pip install \"moto[server]\"' or set STACK_MOTO_SERVER"
  say "starting moto_server (S3) on $STACK_S3_PORT"
  setsid nohup "$MOTO_SERVER" -H 127.0.0.1 -p "$STACK_S3_PORT" >>"$STACK_LOG_DIR/s3.log" 2>&1 9>&- &
  echo $! >"$STACK_RUN_DIR/s3.pid"
}

# The gates' bucket, made once (moto keeps buckets in memory: again after it restarts).
ensure_bucket() {
  local url
  url="$(s3_url)/$STACK_S3_BUCKET"
  curl -fsS -o /dev/null -I "$url" 2>/dev/null && return 0
  say "creating bucket $STACK_S3_BUCKET"
  curl -fsS -o /dev/null -X PUT "$url" || die "could not create bucket $STACK_S3_BUCKET at $(s3_url) (see $STACK_LOG_DIR/s3.log)"
}

# --- databases and Redis ---------------------------------------------------------------------
if [ $SERVICES_ONLY = 0 ]; then
  install_missing
  bash "$STACK_ROOT/ops/ensure-services.sh" >/dev/null
  for port in $STACK_MYSQL_EXTRA_PORTS; do start_mariadb "$port"; done
  for port in $STACK_REDIS_PORTS; do start_redis_node "$port"; done
  for port in $(stack_mysql_ports); do wait_until 60 "MariaDB on $port" mysql_ping "$port"; done
  for port in $STACK_REDIS_PORTS; do wait_until 20 "redis on $port" redis_ping "$port"; done
  create_cluster
  wait_until 60 "redis cluster_state:ok on every node" cluster_ok_everywhere
  start_s3
  wait_until 60 "moto_server (S3) on $STACK_S3_PORT (log: $STACK_LOG_DIR/s3.log)" s3_ping
  say "databases and redis cluster up after $(($(date +%s) - began))s"
fi
[ $INFRA_ONLY = 1 ] && exit 0
s3_ping >/dev/null 2>&1 || die "the S3 server on $STACK_S3_PORT does not answer: run ops/stack/up.sh without --services"
ensure_bucket

# --- services ----------------------------------------------------------------------------------
mapfile -t COMMON_ENV < <(stack_service_env)
mapfile -t GATE_ENV < <(stack_gate_env)

start_service() { # name entry extra-env...
  local name=$1 entry=$2; shift 2
  local pid="$STACK_RUN_DIR/$name.pid"
  if alive "$pid"; then return 0; fi
  say "starting $name"
  # Its own certificate of the stack's CA for the internal gRPC (made once, kept in the run folder).
  local tls_env
  mapfile -t tls_env < <(stack_service_tls_env "$name")
  # STACK_NODE_ARGS: extra node flags for every service, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  # (node refuses --cpu-prof in NODE_OPTIONS).
  # shellcheck disable=SC2086
  env "${COMMON_ENV[@]}" "${tls_env[@]}" "METRICS_PORT=$(stack_metrics_port "$name")" "$@" setsid nohup node ${STACK_NODE_ARGS:-} --import tsx "$STACK_ROOT/$entry" \
    >>"$STACK_LOG_DIR/$name.log" 2>&1 9>&- &
  echo $! >"$pid"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

start_service status src/status/main.ts
start_service verify src/verify/main.ts
wait_until 60 "status on $STACK_STATUS_PORT" port_open "$STACK_HOST" "$STACK_STATUS_PORT"
wait_until 60 "verify on $STACK_VERIFY_PORT" port_open "$STACK_HOST" "$STACK_VERIFY_PORT"
start_service gate src/gate/main.ts "${GATE_ENV[@]}" "GATE_HOST=$STACK_HOST" "GATE_PORT=$STACK_GATE_PORT"
start_service gate-2 src/gate/main.ts "${GATE_ENV[@]}" "GATE_HOST=$STACK_HOST" "GATE_PORT=$STACK_GATE2_PORT"
for i in $(seq 1 "$STACK_CHAT_NODES"); do
  # Behind a proxy (ops/nginx), node i announces the proxy's TCP port base + i - 1.
  public_tcp=()
  [ -n "${STACK_CHAT_PUBLIC_TCP_BASE:-}" ] && public_tcp=("CHAT_PUBLIC_TCP_PORT=$((STACK_CHAT_PUBLIC_TCP_BASE + i - 1))")
  start_service "chat-$i" src/chat/main.ts "CHAT_NODE_ID=chat-$i" "CHAT_HOST=$STACK_HOST" \
    "CHAT_TCP_PORT=$((STACK_CHAT_TCP_BASE + i - 1))" "CHAT_WS_PORT=$((STACK_CHAT_WS_BASE + i - 1))" \
    "CHAT_GRPC_PORT=$((STACK_CHAT_GRPC_BASE + i - 1))" "${public_tcp[@]}"
done
wait_until 90 "gate /healthz on $STACK_GATE_PORT" curl -fsS "http://$STACK_HOST:$STACK_GATE_PORT/healthz"
wait_until 90 "gate-2 /healthz on $STACK_GATE2_PORT" curl -fsS "http://$STACK_HOST:$STACK_GATE2_PORT/healthz"
for i in $(seq 1 "$STACK_CHAT_NODES"); do
  wait_until 90 "chat-$i on $((STACK_CHAT_TCP_BASE + i - 1))" port_open "$STACK_HOST" "$((STACK_CHAT_TCP_BASE + i - 1))"
done
for name in status verify gate gate-2 $(seq -f 'chat-%g' 1 "$STACK_CHAT_NODES"); do
  alive "$STACK_RUN_DIR/$name.pid" || die "$name exited, see $STACK_LOG_DIR/$name.log"
done

cat <<TOPOLOGY
[stack] up after $(($(date +%s) - began))s
  MariaDB shards   $(for p in $(stack_mysql_ports); do printf '127.0.0.1:%s ' "$p"; done)(database $STACK_MYSQL_DB; the first holds the shard map)
  Redis Cluster    $(stack_redis_nodes | tr , ' ')
  S3 (moto)        $(s3_url)   (bucket $STACK_S3_BUCKET, any key pair)
  status (gRPC)    $STACK_HOST:$STACK_STATUS_PORT
  verify (gRPC)    $STACK_HOST:$STACK_VERIFY_PORT   (codes are written to $STACK_LOG_DIR/verify.log)
  gate (HTTP)      http://$STACK_HOST:$STACK_GATE_PORT
  gate-2 (HTTP)    http://$STACK_HOST:$STACK_GATE2_PORT   (same bucket, Redis and databases: either answers any request)
$(for i in $(seq 1 "$STACK_CHAT_NODES"); do echo "  chat-$i           tcp $STACK_HOST:$((STACK_CHAT_TCP_BASE + i - 1))  ws ws://$STACK_HOST:$((STACK_CHAT_WS_BASE + i - 1))/  grpc $STACK_HOST:$((STACK_CHAT_GRPC_BASE + i - 1))"; done)
  metrics          $(for name in status verify gate gate-2 $(seq -f 'chat-%g' 1 "$STACK_CHAT_NODES"); do printf '%s ' "$(stack_metrics_port "$name")"; done)(/metrics of status verify gate gate-2 chat-*)
  logs             $STACK_LOG_DIR
  client           GATE_URL=http://$STACK_HOST:$STACK_GATE_PORT npm run cli -- ...
  stop             npm run stack:down
TOPOLOGY
