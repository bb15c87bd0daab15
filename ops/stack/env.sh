# Ports, paths and names of the local multi-shard stack, shared by up.sh, down.sh and the tests
# (test/helpers/stack.ts sources this file). Each can be overridden from the environment.
STACK_ROOT="${STACK_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
STACK_DIR="${STACK_DIR:-$STACK_ROOT/.stack}"
STACK_LOG_DIR="${STACK_LOG_DIR:-$STACK_DIR/logs}"
STACK_RUN_DIR="${STACK_RUN_DIR:-$STACK_DIR/run}"

# MariaDB: the machine's own instance (first shard, control) plus extra mariadbd processes.
STACK_MYSQL_MAIN_PORT="${STACK_MYSQL_MAIN_PORT:-3306}"
STACK_MYSQL_EXTRA_PORTS="${STACK_MYSQL_EXTRA_PORTS:-3307 3308}"
STACK_MYSQL_DB="${STACK_MYSQL_DB:-shardchat_stack}"

# Redis Cluster: 3 masters + 3 replicas.
STACK_REDIS_PORTS="${STACK_REDIS_PORTS:-7001 7002 7003 7004 7005 7006}"
STACK_REDIS_NODE_TIMEOUT_MS="${STACK_REDIS_NODE_TIMEOUT_MS:-2000}"
# How long up.sh waits for nodes that knew each other to agree again before it resets the
# cluster (which wipes every key).
STACK_REDIS_HEAL_S="${STACK_REDIS_HEAL_S:-60}"
STACK_REDIS_PREFIX="${STACK_REDIS_PREFIX:-stack:}"

# Services (fixed ports, apart from npm start's defaults so both can run at once).
STACK_HOST="${STACK_HOST:-127.0.0.1}"
STACK_GATE_PORT="${STACK_GATE_PORT:-8180}"
# A second gate on the same bucket: gates share nothing but the bucket, Redis and the databases.
STACK_GATE2_PORT="${STACK_GATE2_PORT:-8181}"
STACK_VERIFY_PORT="${STACK_VERIFY_PORT:-50151}"
STACK_STATUS_PORT="${STACK_STATUS_PORT:-50152}"
STACK_CHAT_NODES="${STACK_CHAT_NODES:-3}"
STACK_CHAT_TCP_BASE="${STACK_CHAT_TCP_BASE:-9201}"
STACK_CHAT_WS_BASE="${STACK_CHAT_WS_BASE:-9301}"
STACK_CHAT_GRPC_BASE="${STACK_CHAT_GRPC_BASE:-50161}"
# Each service's ops server (/metrics, /healthz, /readyz; METRICS_PORT) on loopback, which
# ops/prometheus scrapes: status, verify, gate and gate-2 on base + 0..3, chat-i on the chat base + i - 1.
STACK_METRICS_BASE="${STACK_METRICS_BASE:-9501}"
STACK_CHAT_METRICS_BASE="${STACK_CHAT_METRICS_BASE:-9511}"

# S3: moto_server (Python, in memory) on loopback, the gates' FILE_STORE=s3 bucket.
STACK_S3_PORT="${STACK_S3_PORT:-9400}"
STACK_S3_BUCKET="${STACK_S3_BUCKET:-shardchat-stack}"

# The METRICS_PORT of a service of the stack (status, verify, gate, gate-2, chat-N).
stack_metrics_port() {
  case "$1" in
    status) echo "$STACK_METRICS_BASE" ;;
    verify) echo "$((STACK_METRICS_BASE + 1))" ;;
    gate) echo "$((STACK_METRICS_BASE + 2))" ;;
    gate-2) echo "$((STACK_METRICS_BASE + 3))" ;;
    chat-*) echo "$((STACK_CHAT_METRICS_BASE + ${1#chat-} - 1))" ;;
    *) echo "stack_metrics_port: no service $1" >&2; return 1 ;;
  esac
}

stack_mysql_ports() { echo "$STACK_MYSQL_MAIN_PORT $STACK_MYSQL_EXTRA_PORTS"; }

# MYSQL_SHARDS of the stack: one URL per instance, the control instance first.
stack_mysql_shards() {
  local urls=() port
  for port in $(stack_mysql_ports); do urls+=("mysql://root@127.0.0.1:$port/$STACK_MYSQL_DB"); done
  (IFS=,; echo "${urls[*]}")
}

stack_redis_nodes() {
  local nodes=() port
  for port in $STACK_REDIS_PORTS; do nodes+=("127.0.0.1:$port"); done
  (IFS=,; echo "${nodes[*]}")
}

# The settings every service of the stack gets (one per line, NAME=value): up.sh and the
# ops/ scripts that add services to a running stack start them with the same ones.
# INTERNAL_AUTH_TOKEN of the stack's services: STACK_INTERNAL_AUTH_TOKEN, or one made on first
# use and kept in the run folder, so a service restarted alone still matches the others.
stack_internal_auth_token() {
  if [ -n "${STACK_INTERNAL_AUTH_TOKEN:-}" ]; then echo "$STACK_INTERNAL_AUTH_TOKEN"; return; fi
  local file="$STACK_RUN_DIR/internal-auth-token"
  if [ ! -s "$file" ]; then
    mkdir -p "$STACK_RUN_DIR"
    (umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

# The stack's internal gRPC runs with mutual TLS: a CA, one certificate per service and one
# for the tools that call the services directly (tests, the bench, chaos), made on first use
# in the run folder by ops/make-internal-certs.sh (which keeps what exists). NAMES: the
# certificates wanted besides the CA. Prints the folder.
stack_internal_tls_dir() {
  local dir="$STACK_RUN_DIR/tls"
  bash "$STACK_ROOT/ops/make-internal-certs.sh" "$dir" "$@" >/dev/null
  echo "$dir"
}

# The environment lines of one service's own certificate (NAME: status, gate, chat-1, ...).
stack_service_tls_env() {
  local dir
  dir=$(stack_internal_tls_dir "$1")
  printf '%s\n' "INTERNAL_TLS_CERT=$dir/$1.pem" "INTERNAL_TLS_KEY=$dir/$1.key"
}

stack_service_env() {
  printf '%s\n' \
    "INTERNAL_AUTH_TOKEN=$(stack_internal_auth_token)" \
    "INTERNAL_TLS_CA=$(stack_internal_tls_dir)/ca.pem" \
    "MYSQL_URL=mysql://root@127.0.0.1:$STACK_MYSQL_MAIN_PORT/$STACK_MYSQL_DB" \
    "MYSQL_SHARDS=$(stack_mysql_shards)" \
    "REDIS_CLUSTER_NODES=$(stack_redis_nodes)" \
    "REDIS_KEY_PREFIX=$STACK_REDIS_PREFIX" \
    "STORAGE_BACKEND=mysql" \
    "ROUTING_BACKEND=redis" \
    "STATUS_ADDR=$STACK_HOST:$STACK_STATUS_PORT" \
    "VERIFY_ADDR=$STACK_HOST:$STACK_VERIFY_PORT" \
    "LOG_LEVEL=${LOG_LEVEL:-info}"
}

# The settings of both gates on top of stack_service_env: files in the stack's S3 bucket
# (moto accepts any key pair). Their file links are signed with a key derived from the shared
# INTERNAL_AUTH_TOKEN, so either gate's link is good at the other.
# moto lists every multipart upload as initiated on 2010-11-10, so tus's expiry sweep (gate's
# upload sweep) would take each unfinished resumable upload for expired and abort it mid-upload:
# on this stack they expire after 30 years instead of GATE_RESUMABLE_EXPIRY_MS's day.
stack_gate_env() {
  printf '%s\n' \
    "FILE_STORE=s3" \
    "GATE_RESUMABLE_EXPIRY_MS=946080000000" \
    "S3_ENDPOINT=http://127.0.0.1:$STACK_S3_PORT" \
    "S3_FORCE_PATH_STYLE=true" \
    "S3_REGION=us-east-1" \
    "S3_BUCKET=$STACK_S3_BUCKET" \
    "S3_ACCESS_KEY_ID=stack" \
    "S3_SECRET_ACCESS_KEY=stack"
}
