#!/usr/bin/env bash
# nginx in front of shardchat: balances gate over HTTP, proxies each chat node's WebSocket at
# /ws/<nodeId> (what a chat node announces with CHAT_PUBLIC_WS_URL=ws://<nginx>/ws) and passes
# each chat node's raw TCP through the stream module on a port of its own (announced with
# CHAT_PUBLIC_TCP_PORT). Runs its own nginx (not the system service) from NGINX_DIR.
#
#   ops/nginx/nginx.sh render   write $NGINX_DIR/nginx.conf from the settings below
#   ops/nginx/nginx.sh start    install nginx if missing, render, test the config, start
#   ops/nginx/nginx.sh stop     stop the nginx started from $NGINX_DIR
#
# Settings (environment):
#   NGINX_DIR         working folder: config, pid, logs, temp files (default .stack/nginx)
#   NGINX_HOST        listen address (default 127.0.0.1)
#   NGINX_HTTP_PORT   gate and WebSocket port (default 8088)
#   NGINX_GATES       gate addresses, "host:port host:port ..."
#   NGINX_CHAT_NODES  chat nodes, "nodeId=host:tcpPort:wsPort:publicTcpPort ..."
#   NGINX_TIMEOUT     idle timeout of a long-lived chat connection (default 3600s; keep it above
#                     the nodes' CHAT_IDLE_TIMEOUT_MS, which is what really ends idle sessions)
#   NGINX_MAX_BODY    largest request body (default 16m; keep it above GATE_FILE_MAX_BYTES)
#   NGINX_CONN_PER_ADDR  connections one client address may hold, HTTP, WebSocket and TCP each
#                     (default 200; the chat nodes behind see only nginx, so this is the cap)
#   NGINX_GATE_RATE   gate requests per second per client address (default 20, bursts of 40)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NGINX_DIR="${NGINX_DIR:-$ROOT/.stack/nginx}"
NGINX_HOST="${NGINX_HOST:-127.0.0.1}"
NGINX_HTTP_PORT="${NGINX_HTTP_PORT:-8088}"
NGINX_GATES="${NGINX_GATES:-127.0.0.1:8080}"
NGINX_CHAT_NODES="${NGINX_CHAT_NODES:-}"
NGINX_TIMEOUT="${NGINX_TIMEOUT:-3600s}"
NGINX_MAX_BODY="${NGINX_MAX_BODY:-16m}"
NGINX_CONN_PER_ADDR="${NGINX_CONN_PER_ADDR:-200}"
NGINX_GATE_RATE="${NGINX_GATE_RATE:-20}"
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"

die() { echo "[nginx] $*" >&2; exit 1; }

render() {
  mkdir -p "$NGINX_DIR/tmp"
  local load_stream="" gates="" ws_locations="" streams="" node id rest host tcp ws public
  if [ -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
    load_stream="load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
  fi
  for gate in $NGINX_GATES; do
    gates+="    server $gate max_fails=1 fail_timeout=2s;"$'\n'
  done
  for node in $NGINX_CHAT_NODES; do
    id="${node%%=*}"; rest="${node#*=}"
    IFS=: read -r host tcp ws public <<<"$rest"
    [[ "$id" =~ ^[A-Za-z0-9_.-]+$ && -n "$host" && "$tcp" =~ ^[0-9]+$ && "$ws" =~ ^[0-9]+$ && "$public" =~ ^[0-9]+$ ]] ||
      die "NGINX_CHAT_NODES entry '$node' is not nodeId=host:tcpPort:wsPort:publicTcpPort"
    ws_locations+="
    location = /ws/$id {
      proxy_pass http://$host:$ws/;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Request-Id \$request_id;
      proxy_connect_timeout 2s;
      proxy_read_timeout $NGINX_TIMEOUT;
      proxy_send_timeout $NGINX_TIMEOUT;
      proxy_buffering off;
    }
"
    streams+="
  server {
    # $id: the port this node announces as CHAT_PUBLIC_TCP_PORT.
    listen $NGINX_HOST:$public;
    proxy_pass $host:$tcp;
    proxy_connect_timeout 2s;
    proxy_timeout $NGINX_TIMEOUT;
  }
"
  done
  cat >"$NGINX_DIR/nginx.conf" <<CONF
# Rendered by ops/nginx/nginx.sh; edit the script's settings, not this file.
$load_stream
worker_processes auto;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log notice;

events {
  worker_connections 16384;
}

http {
  log_format shardchat '\$remote_addr [\$time_iso8601] "\$request" \$status \$body_bytes_sent '
                       'rid=\$request_id upstream=\$upstream_addr rt=\$request_time';
  access_log $NGINX_DIR/access.log shardchat;
  client_body_temp_path $NGINX_DIR/tmp/body;
  proxy_temp_path $NGINX_DIR/tmp/proxy;
  fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
  uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
  scgi_temp_path $NGINX_DIR/tmp/scgi;
  client_max_body_size $NGINX_MAX_BODY;
  server_tokens off;
  # Per client address: connections held (gate and chat WebSockets) and gate's request rate.
  limit_conn_zone \$binary_remote_addr zone=shardchat_conn:10m;
  limit_req_zone \$binary_remote_addr zone=shardchat_gate:10m rate=${NGINX_GATE_RATE}r/s;
  limit_conn_status 429;
  limit_req_status 429;

  map \$http_upgrade \$connection_upgrade {
    default upgrade;
    ""      close;
  }

  # gate keeps no state: any instance answers any request.
  upstream shardchat_gate {
    least_conn;
$gates    keepalive 32;
  }

  server {
    listen $NGINX_HOST:$NGINX_HTTP_PORT;
    limit_conn shardchat_conn $NGINX_CONN_PER_ADDR;

    location / {
      limit_req zone=shardchat_gate burst=$((NGINX_GATE_RATE * 2)) nodelay;
      proxy_pass http://shardchat_gate;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      # gate reads the client address from here (GATE_TRUST_PROXY=<this nginx's address>),
      # for its per-address limits; \$request_id follows the request into every service's log.
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Request-Id \$request_id;
      proxy_connect_timeout 2s;
      # A gate that refuses the connection is skipped; a request it already got is never replayed.
      proxy_next_upstream error timeout;
    }
$ws_locations  }
}

stream {
  log_format shardchat_tcp '\$remote_addr [\$time_iso8601] \$server_port -> \$upstream_addr '
                           '\$status in=\$bytes_received out=\$bytes_sent \${session_time}s';
  access_log $NGINX_DIR/stream.log shardchat_tcp;
  limit_conn_zone \$binary_remote_addr zone=shardchat_tcp:10m;
  limit_conn shardchat_tcp $NGINX_CONN_PER_ADDR;
$streams}
CONF
  echo "$NGINX_DIR/nginx.conf"
}

case "${1:-}" in
  render) render ;;
  start)
    bash "$ROOT/ops/nginx/install.sh"
    NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
    render >/dev/null
    "$NGINX_BIN" -t -q -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" || die "config test failed"
    if [ -s "$NGINX_DIR/nginx.pid" ] && kill -0 "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null; then
      "$NGINX_BIN" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -s reload
    else
      "$NGINX_BIN" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf"
    fi
    echo "[nginx] listening on http://$NGINX_HOST:$NGINX_HTTP_PORT (config $NGINX_DIR/nginx.conf)"
    # The one setting this proxy needs on the other side: without it every client counts as nginx.
    echo "[nginx] run gate with GATE_TRUST_PROXY=<the address gate sees nginx connect from> (loopback here: 127.0.0.1), so its per-address limits count clients"
    ;;
  stop)
    if [ -s "$NGINX_DIR/nginx.pid" ] && kill -0 "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null; then
      "$NGINX_BIN" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -s quit
      for _ in $(seq 1 50); do [ -e "$NGINX_DIR/nginx.pid" ] || break; sleep 0.1; done
    fi
    ;;
  *) die "usage: $0 render|start|stop" ;;
esac
