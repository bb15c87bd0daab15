#!/usr/bin/env bash
# Starts one more MariaDB instance for the local stack (a mariadbd with its own data dir, as
# up.sh starts the others) and prints what to run to give it slots. It holds no data and no
# slots until a rebalance moves some there:
#   ops/add-mysql-instance.sh 3309
#   MYSQL_SHARDS=... npm run rebalance -- --add s3=mysql://root@127.0.0.1:3309/<db> --share 1/3
# The instance keeps running until `STACK_MYSQL_EXTRA_PORTS="... 3309" ops/stack/down.sh`.
set -euo pipefail
source "$(dirname "$0")/stack/env.sh"
port=${1:?usage: ops/add-mysql-instance.sh PORT}
[[ "$port" =~ ^[0-9]+$ ]] || { echo "[ops] PORT must be a number" >&2; exit 2; }
case " $(stack_mysql_ports) " in *" $port "*) echo "[ops] $port is already an instance of the stack" >&2; exit 1 ;; esac
began=$(date +%s%N)
STACK_MYSQL_EXTRA_PORTS="$STACK_MYSQL_EXTRA_PORTS $port" bash "$STACK_ROOT/ops/stack/up.sh" --infra
count=$(( $(echo "$(stack_mysql_ports)" | wc -w) ))
echo "[ops] MariaDB on 127.0.0.1:$port up after $((($(date +%s%N) - began) / 1000000)) ms"
echo "[ops] give it slots:  MYSQL_SHARDS=$(stack_mysql_shards) npm run rebalance -- --add s$count=mysql://root@127.0.0.1:$port/$STACK_MYSQL_DB --share 1/$((count + 1)) --dry-run"
