#!/usr/bin/env bash
# Makes sure the machine's MariaDB (127.0.0.1:3306) and Redis (127.0.0.1:6379) answer,
# installing them from Debian's packages and starting them when they do not.
set -euo pipefail

# `npm start` passes --only-if-configured: on the embedded default (SQLite, in-memory routing)
# it needs neither, so nothing is installed or started.
if [ "${1:-}" = "--only-if-configured" ] && [ "${STORAGE_BACKEND:-sqlite}" != "mysql" ] \
  && [ "${ROUTING_BACKEND:-memory}" != "redis" ]; then
  exit 0
fi

need_install=()
command -v mariadbd >/dev/null || need_install+=(mariadb-server)
command -v redis-server >/dev/null || need_install+=(redis-server)
if [ ${#need_install[@]} -gt 0 ]; then
  echo "installing ${need_install[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_install[@]}"
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting redis on 6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

if ! mariadb -h 127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1; then
  echo "starting mariadb on 3306"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi

for _ in $(seq 1 60); do
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && mariadb -h 127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "MariaDB or Redis did not come up" >&2
exit 1
